//! Alert rules compiled into one [`RuleSet`], the [`Matcher`] the store calls inside
//! its ingest transaction.
//!
//! # The rule language
//!
//! A rule matches an entry when **all** of these hold:
//!
//! 1. if the rule has `any` keywords or `regex` patterns, at least one of them hits
//!    (a regex counts as one more `any` alternative);
//! 2. every `all` keyword hits;
//! 3. no `none` keyword hits;
//! 4. the entry's lookout source is in `sources`, when `sources` is given.
//!
//! A match is delivered to the rule's `notify` list (default: `log`); `notify = []`
//! delivers nowhere, and the match only shows in the rule's feed.
//!
//! Each keyword or pattern is looked for in the rule's `fields` (default: title, summary,
//! authors and the publisher); a hit in any of them counts.
//!
//! Keywords are matched case-insensitively (Unicode lower-casing, so "Ärzte" matches
//! "ärzte"; "Straße"/"STRASSE" is not folded) at word boundaries: where a keyword starts
//! (ends) with a letter or digit, the character before (after) it in the text must not
//! be one. So "diffusion" matches "Diffusion-based" and "diffusion." but neither
//! "diffusions" nor "nondiffusion". A keyword of several words is a phrase: any run of
//! whitespace in the text matches the single space between its words. A trailing `*`
//! makes a prefix: "diffus*" matches "diffusion" and "diffusing" (it still has to start
//! at a word boundary). Regular expressions use the `regex` crate's syntax, are
//! case-insensitive, and run over the same lower-cased, whitespace-collapsed text.
//!
//! # Why one automaton
//!
//! Every keyword of every rule goes into one Aho-Corasick automaton and every regex into
//! one `RegexSet`, so each field of an entry is read once whatever the number of rules.
//! The automaton reports *overlapping* matches: with "diffusion" and "diffusion model"
//! both in it, the text "diffusion models" must still yield "diffusion" even though the
//! longer keyword fails its end boundary, and a leftmost-longest search would hide it.
//! Only the rules that got a positive hit are then evaluated, so the work after the scan
//! grows with the hits, not with the rules.

use std::borrow::Cow;
use std::ops::Range;

use aho_corasick::{AhoCorasick, MatchKind};
use regex::{RegexBuilder, RegexSet, RegexSetBuilder};
use unicode_normalization::{is_nfc_quick, IsNormalized, UnicodeNormalization};

use crate::config::{AlertRuleConfig, Field};
use crate::entry::Entry;
use crate::store::{AlertMatch, Matcher};

/// Why a rule set could not be compiled.
#[derive(Debug, thiserror::Error)]
pub enum RuleError {
    /// One rule's regular expression does not parse (or is too large).
    #[error("alert {rule:?}: bad regex #{number} (config bytes {}..{}): {source}", span.start, span.end)]
    BadRegex {
        /// The rule's name.
        rule: String,
        /// 1-based position of the pattern in the rule's `regex` list.
        number: usize,
        /// Byte span of the pattern in the config file (`0..0` when not from a file).
        span: Range<usize>,
        /// The regex crate's error, which shows the position inside the pattern.
        source: Box<regex::Error>,
    },
    /// A keyword is empty (or only `*` or whitespace).
    #[error("alert {rule:?}: empty keyword in `{list}`")]
    EmptyKeyword {
        /// The rule's name.
        rule: String,
        /// `any`, `all` or `none`.
        list: &'static str,
    },
    /// The rule has no positive condition, so it would match everything.
    #[error("alert {rule:?} needs at least one of `any`, `all` or `regex`")]
    NoCondition {
        /// The rule's name.
        rule: String,
    },
    /// The keyword automaton could not be built (too many or too long keywords).
    #[error("alert rules: cannot build the keyword automaton: {0}")]
    Automaton(#[from] aho_corasick::BuildError),
    /// Every pattern compiles alone but the combined set exceeds the size limit.
    #[error("alert rules: the combined regex set is too large: {0}")]
    RegexSet(Box<regex::Error>),
}

/// Size limit of the compiled regexes: generous, because one set holds every rule's.
const REGEX_SIZE_LIMIT: usize = 256 << 20;

/// Fields in scan order, with their bit in a rule's field mask.
const FIELDS: [(Field, u8); 4] = [
    (Field::Title, 1),
    (Field::Summary, 2),
    (Field::Authors, 4),
    (Field::Source, 8),
];

fn field_bit(field: Field) -> u8 {
    FIELDS
        .iter()
        .find(|(f, _)| *f == field)
        .map_or(0, |(_, bit)| *bit)
}

/// What a term does for its rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// An `any` keyword or a regex: one of them must hit (when there are any).
    Any,
    /// An `all` keyword: every one must hit.
    All,
    /// A `none` keyword: none may hit.
    None,
}

/// One keyword or regex of one rule. Term ids are handed out rule by rule, so sorting
/// hit term ids groups them by rule.
#[derive(Debug, Clone)]
struct Term {
    rule: u32,
    role: Role,
    /// Trailing `*`: only the start boundary is checked.
    prefix: bool,
    /// The keyword or pattern as written, reported in `AlertMatch::matched`.
    label: String,
}

/// A compiled rule: what is needed once its terms are known to have hit.
#[derive(Debug, Clone)]
struct Rule {
    name: String,
    notify: Vec<String>,
    digest_secs: Option<u64>,
    /// Bit mask over [`FIELDS`].
    fields: u8,
    sources: Option<Vec<String>>,
    /// The rule has `any` keywords or regexes, so one of them must hit.
    needs_any: bool,
    /// Number of `all` terms.
    all_count: usize,
}

/// A distinct keyword text in the automaton and the terms that use it.
#[derive(Debug, Clone)]
struct Pattern {
    /// The keyword starts with a letter or digit, so the character before must not be one.
    start_boundary: bool,
    /// The keyword ends with a letter or digit, so (unless a prefix) the character after
    /// must not be one.
    end_boundary: bool,
    terms: Vec<u32>,
}

/// The terms and distinct keyword texts collected while compiling.
#[derive(Default)]
struct KeywordTable {
    terms: Vec<Term>,
    patterns: Vec<Pattern>,
    /// Normalized text of each pattern, in pattern id order: the automaton's input.
    texts: Vec<String>,
    ids: std::collections::HashMap<String, u32>,
}

impl KeywordTable {
    /// Adds one keyword of rule `rule_id`, sharing the automaton pattern with every other
    /// rule that uses the same normalized text.
    fn add(
        &mut self,
        rule: &str,
        rule_id: u32,
        keyword: &str,
        role: Role,
        list: &'static str,
    ) -> Result<(), RuleError> {
        let (text, prefix) = parse_keyword(keyword).ok_or_else(|| RuleError::EmptyKeyword {
            rule: rule.to_owned(),
            list,
        })?;
        let term_id = self.terms.len() as u32;
        self.terms.push(Term {
            rule: rule_id,
            role,
            prefix,
            label: keyword.trim().to_owned(),
        });
        let pattern_id = match self.ids.get(&text) {
            Some(&id) => id,
            None => {
                let id = self.patterns.len() as u32;
                self.patterns.push(Pattern {
                    start_boundary: text.chars().next().is_some_and(char::is_alphanumeric),
                    end_boundary: text.chars().next_back().is_some_and(char::is_alphanumeric),
                    terms: Vec::new(),
                });
                self.texts.push(text.clone());
                self.ids.insert(text, id);
                id
            }
        };
        self.patterns[pattern_id as usize].terms.push(term_id);
        Ok(())
    }
}

/// Every alert rule compiled into one matcher: an Aho-Corasick automaton over all
/// keywords plus one `RegexSet` over all regexes. See the module docs for the language.
#[derive(Debug, Clone)]
pub struct RuleSet {
    rules: Vec<Rule>,
    terms: Vec<Term>,
    automaton: Option<AhoCorasick>,
    patterns: Vec<Pattern>,
    regexes: Option<RegexSet>,
    /// Term id of each pattern of `regexes`.
    regex_terms: Vec<u32>,
    /// Union of the rules' field masks: fields no rule reads are not scanned.
    used_fields: u8,
}

impl RuleSet {
    /// Compiles the rules into one matcher. Fails on the first rule with an empty
    /// keyword, no positive condition, or a regex that does not parse; the error names
    /// the rule.
    pub fn compile(rules: &[AlertRuleConfig]) -> Result<RuleSet, RuleError> {
        let mut compiled = Vec::with_capacity(rules.len());
        let mut keywords = KeywordTable::default();
        let mut regex_sources: Vec<(String, usize, Range<usize>, String)> = Vec::new();
        let mut regex_terms: Vec<u32> = Vec::new();
        let mut used_fields = 0u8;

        for (rule_idx, rule) in rules.iter().enumerate() {
            let name = rule.name.get_ref().clone();
            if rule.any.is_empty() && rule.all.is_empty() && rule.regex.is_empty() {
                return Err(RuleError::NoCondition { rule: name });
            }
            let rule_id = u32::try_from(rule_idx).unwrap_or(u32::MAX);
            // Term order within a rule (any, all, regex, none) is the order of `matched`.
            for k in &rule.any {
                keywords.add(&name, rule_id, k, Role::Any, "any")?;
            }
            for k in &rule.all {
                keywords.add(&name, rule_id, k, Role::All, "all")?;
            }
            for (i, r) in rule.regex.iter().enumerate() {
                regex_terms.push(keywords.terms.len() as u32);
                keywords.terms.push(Term {
                    rule: rule_id,
                    role: Role::Any,
                    prefix: false,
                    label: r.get_ref().clone(),
                });
                regex_sources.push((r.get_ref().clone(), i + 1, r.span(), name.clone()));
            }
            for k in &rule.none {
                keywords.add(&name, rule_id, k, Role::None, "none")?;
            }

            let fields = match &rule.fields {
                Some(fields) if !fields.is_empty() => {
                    fields.iter().fold(0u8, |mask, f| mask | field_bit(*f))
                }
                _ => FIELDS.iter().fold(0u8, |mask, (_, bit)| mask | bit),
            };
            used_fields |= fields;
            // No `notify` means the log; an explicit empty list means the rule's feed only.
            let mut notify: Vec<String> = match &rule.notify {
                Some(names) => names.iter().map(|n| n.get_ref().clone()).collect(),
                None => vec!["log".to_owned()],
            };
            let mut seen = std::collections::HashSet::new();
            notify.retain(|n| seen.insert(n.clone()));
            compiled.push(Rule {
                name,
                notify,
                digest_secs: rule.digest.map(|d| d.0.as_secs().max(1)),
                fields,
                sources: rule
                    .sources
                    .as_ref()
                    .map(|s| s.iter().map(|n| n.get_ref().clone()).collect()),
                needs_any: !rule.any.is_empty() || !rule.regex.is_empty(),
                all_count: rule.all.len(),
            });
        }

        let KeywordTable {
            terms,
            patterns,
            texts: pattern_texts,
            ids: _,
        } = keywords;
        let automaton = if pattern_texts.is_empty() {
            None
        } else {
            // Standard match semantics: the only kind that reports overlapping matches.
            Some(
                AhoCorasick::builder()
                    .match_kind(MatchKind::Standard)
                    .build(&pattern_texts)?,
            )
        };
        let regexes = if regex_sources.is_empty() {
            None
        } else {
            Some(compile_regex_set(&regex_sources)?)
        };
        Ok(RuleSet {
            rules: compiled,
            terms,
            automaton,
            patterns,
            regexes,
            regex_terms,
            used_fields,
        })
    }

    /// Number of rules.
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// Whether there are no rules (every entry matches nothing).
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Term ids hit in one field's text, appended to `hits`.
    fn scan(&self, text: &str, bit: u8, hay: &mut String, hits: &mut Vec<u32>) {
        normalize_into(text, hay);
        if hay.is_empty() {
            return;
        }
        if let Some(automaton) = &self.automaton {
            for m in automaton.find_overlapping_iter(hay.as_str()) {
                let pattern = &self.patterns[m.pattern().as_usize()];
                // Matches of valid UTF-8 patterns in valid UTF-8 text fall on char boundaries.
                let start_ok = !pattern.start_boundary
                    || !hay[..m.start()]
                        .chars()
                        .next_back()
                        .is_some_and(char::is_alphanumeric);
                if !start_ok {
                    continue;
                }
                let end_ok = !pattern.end_boundary
                    || !hay[m.end()..]
                        .chars()
                        .next()
                        .is_some_and(char::is_alphanumeric);
                for &term_id in &pattern.terms {
                    let term = &self.terms[term_id as usize];
                    if (term.prefix || end_ok) && self.rules[term.rule as usize].fields & bit != 0 {
                        hits.push(term_id);
                    }
                }
            }
        }
        if let Some(set) = &self.regexes {
            for i in set.matches(hay.as_str()).iter() {
                let term_id = self.regex_terms[i];
                let term = &self.terms[term_id as usize];
                if self.rules[term.rule as usize].fields & bit != 0 {
                    hits.push(term_id);
                }
            }
        }
    }

    /// Decides one rule from its hit terms (all belonging to it, sorted, distinct).
    fn decide(&self, rule: &Rule, hit_terms: &[u32], source: &str) -> Option<AlertMatch> {
        if let Some(sources) = &rule.sources {
            if !sources.iter().any(|s| s == source) {
                return None;
            }
        }
        let mut any_hit = false;
        let mut all_hits = 0usize;
        let mut matched: Vec<String> = Vec::new();
        for &term_id in hit_terms {
            let term = &self.terms[term_id as usize];
            match term.role {
                Role::None => return None,
                Role::Any => any_hit = true,
                Role::All => all_hits += 1,
            }
            if !matched.contains(&term.label) {
                matched.push(term.label.clone());
            }
        }
        if (rule.needs_any && !any_hit) || all_hits < rule.all_count {
            return None;
        }
        Some(AlertMatch {
            rule: rule.name.clone(),
            notifiers: rule.notify.clone(),
            matched,
            digest_secs: rule.digest_secs,
        })
    }
}

impl Matcher for RuleSet {
    fn matches(&self, entry: &Entry, source: &str) -> Vec<AlertMatch> {
        let mut hits: Vec<u32> = Vec::new();
        let mut hay = String::new();
        for (field, bit) in FIELDS {
            if self.used_fields & bit == 0 {
                continue;
            }
            match field {
                Field::Title => self.scan(&entry.title, bit, &mut hay, &mut hits),
                Field::Summary => self.scan(&entry.summary, bit, &mut hay, &mut hits),
                // "; " keeps a phrase from spanning two authors' names.
                Field::Authors => self.scan(&entry.authors.join("; "), bit, &mut hay, &mut hits),
                Field::Source => {
                    if let Some(publisher) = &entry.source {
                        self.scan(publisher, bit, &mut hay, &mut hits);
                    }
                }
            }
        }
        if hits.is_empty() {
            return Vec::new();
        }
        // Term ids are numbered rule by rule, so sorting groups the hits by rule and
        // puts each rule's terms in config order.
        hits.sort_unstable();
        hits.dedup();
        let mut out = Vec::new();
        let mut start = 0;
        while start < hits.len() {
            let rule_id = self.terms[hits[start] as usize].rule;
            let end = hits[start..]
                .iter()
                .position(|&t| self.terms[t as usize].rule != rule_id)
                .map_or(hits.len(), |n| start + n);
            if let Some(m) = self.decide(&self.rules[rule_id as usize], &hits[start..end], source) {
                out.push(m);
            }
            start = end;
        }
        out
    }
}

/// Compiles every rule's regex into one set; on failure finds the culprit so the error
/// can name its rule (the set's own error does not say which pattern it was).
fn compile_regex_set(
    sources: &[(String, usize, Range<usize>, String)],
) -> Result<RegexSet, RuleError> {
    let built = RegexSetBuilder::new(sources.iter().map(|(p, ..)| p.as_str()))
        .case_insensitive(true)
        .size_limit(REGEX_SIZE_LIMIT)
        .build();
    match built {
        Ok(set) => Ok(set),
        Err(set_error) => {
            for (pattern, number, span, rule) in sources {
                if let Err(e) = RegexBuilder::new(pattern)
                    .case_insensitive(true)
                    .size_limit(REGEX_SIZE_LIMIT)
                    .build()
                {
                    return Err(RuleError::BadRegex {
                        rule: rule.clone(),
                        number: *number,
                        span: span.clone(),
                        source: Box::new(e),
                    });
                }
            }
            Err(RuleError::RegexSet(Box::new(set_error)))
        }
    }
}

/// Splits a trailing `*` off a keyword and normalizes it like the text it is matched
/// against. `None` when nothing is left.
fn parse_keyword(keyword: &str) -> Option<(String, bool)> {
    let trimmed = keyword.trim();
    let (body, prefix) = match trimmed.strip_suffix('*') {
        Some(body) => (body, true),
        None => (trimmed, false),
    };
    let mut text = String::new();
    normalize_into(body, &mut text);
    (!text.is_empty()).then_some((text, prefix))
}

/// Writes `text` into `out` case-folded (NFC, then Unicode lower case, final sigma
/// folded to sigma) with every whitespace run collapsed to one space and the ends
/// trimmed. Keywords and texts go through the same function, so they agree.
fn normalize_into(text: &str, out: &mut String) {
    out.clear();
    // Most text is already NFC; the quick check avoids re-composing it.
    let text: Cow<'_, str> = match is_nfc_quick(text.chars()) {
        IsNormalized::Yes => Cow::Borrowed(text),
        _ => Cow::Owned(text.nfc().collect()),
    };
    let mut pending_space = false;
    for ch in text.chars() {
        if ch.is_whitespace() || ch == '\u{feff}' {
            pending_space = true;
            continue;
        }
        if pending_space && !out.is_empty() {
            out.push(' ');
        }
        pending_space = false;
        if ch.is_ascii() {
            out.push(ch.to_ascii_lowercase());
        } else if ch == 'ς' {
            // Simple case folding maps final sigma to sigma; lower-casing does not.
            out.push('σ');
        } else {
            out.extend(ch.to_lowercase());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn rules(toml: &str) -> RuleSet {
        let config = Config::parse(toml, "test.toml").expect("test config parses");
        RuleSet::compile(&config.alerts).expect("rules compile")
    }

    fn entry(title: &str, summary: &str) -> Entry {
        Entry {
            title: title.to_owned(),
            summary: summary.to_owned(),
            ..Entry::default()
        }
    }

    fn names(set: &RuleSet, e: &Entry, source: &str) -> Vec<String> {
        set.matches(e, source).into_iter().map(|m| m.rule).collect()
    }

    fn hit(set: &RuleSet, title: &str) -> bool {
        !set.matches(&entry(title, ""), "s").is_empty()
    }

    #[test]
    fn keyword_matches_only_at_word_boundaries() {
        let set = rules("[[alert]]\nname = \"d\"\nany = [\"diffusion\"]\n");
        assert!(hit(&set, "Diffusion-based generation"));
        assert!(hit(&set, "We study diffusion."));
        assert!(hit(&set, "diffusion"));
        assert!(hit(&set, "(diffusion)"));
        assert!(!hit(&set, "Many diffusions"));
        assert!(!hit(&set, "nondiffusion processes"));
        assert!(!hit(&set, "diffusion2"));
    }

    #[test]
    fn phrase_matches_across_any_whitespace_run() {
        let set = rules("[[alert]]\nname = \"p\"\nany = [\"large  language model\"]\n");
        assert!(hit(&set, "A Large Language Model for X"));
        assert!(hit(&set, "large\n\tlanguage \u{a0}model"));
        assert!(!hit(&set, "large language models"));
        assert!(!hit(&set, "large-language model"));
        assert!(!hit(&set, "language model"));
    }

    #[test]
    fn overlapping_keywords_do_not_hide_each_other() {
        // "diffusion model" fails its end boundary in "diffusion models"; "diffusion"
        // starting at the same place must still be found.
        let set = rules(
            "[[alert]]\nname = \"long\"\nany = [\"diffusion model\"]\n\
             [[alert]]\nname = \"short\"\nany = [\"diffusion\"]\n",
        );
        assert_eq!(names(&set, &entry("diffusion models", ""), "s"), ["short"]);
    }

    #[test]
    fn trailing_star_is_a_prefix() {
        let set = rules("[[alert]]\nname = \"p\"\nany = [\"diffus*\"]\n");
        assert!(hit(&set, "Diffusion"));
        assert!(hit(&set, "diffusing gradients"));
        assert!(hit(&set, "diffus"));
        assert!(!hit(&set, "nondiffusing"));
        let m = set.matches(&entry("diffusing", ""), "s");
        assert_eq!(m[0].matched, ["diffus*"]);
    }

    #[test]
    fn any_all_none_together() {
        let set = rules(
            "[[alert]]\nname = \"r\"\nany = [\"diffusion\", \"score-based\"]\n\
             all = [\"theory\", \"sde\"]\nnone = [\"survey\"]\n",
        );
        assert!(hit(&set, "Score-based SDE theory"));
        assert!(hit(&set, "diffusion: an SDE theory"));
        assert!(!hit(&set, "diffusion theory"), "one `all` keyword missing");
        assert!(!hit(&set, "SDE theory"), "no `any` keyword");
        assert!(
            !hit(&set, "diffusion SDE theory: a survey"),
            "a `none` keyword"
        );
        let m = set.matches(&entry("SDE theory of diffusion", ""), "s");
        assert_eq!(m[0].matched, ["diffusion", "theory", "sde"]);
    }

    #[test]
    fn all_alone_and_regex_as_any_alternative() {
        let set = rules(
            "[[alert]]\nname = \"all\"\nall = [\"graph\", \"neural\"]\n\
             [[alert]]\nname = \"rx\"\nany = [\"diffusion\"]\nregex = ['\\bSDEs?\\b']\n\
             [[alert]]\nname = \"rxonly\"\nregex = ['arxiv:\\d{4}\\.\\d{5}']\n",
        );
        assert_eq!(
            names(&set, &entry("Neural nets on a graph", ""), "s"),
            ["all"]
        );
        assert_eq!(names(&set, &entry("Neural SDEs", ""), "s"), ["rx"]);
        assert_eq!(names(&set, &entry("sde", ""), "s"), ["rx"]);
        assert!(names(&set, &entry("sdes2", ""), "s").is_empty());
        assert_eq!(
            names(&set, &entry("see arXiv:2401.12345", ""), "s"),
            ["rxonly"]
        );
        let m = set.matches(&entry("Neural SDEs", ""), "s");
        assert_eq!(m[0].matched, ["\\bSDEs?\\b"]);
    }

    #[test]
    fn fields_restrict_where_keywords_are_looked_for() {
        let set = rules(
            "[[alert]]\nname = \"t\"\nany = [\"hinton\"]\nfields = [\"title\"]\n\
             [[alert]]\nname = \"a\"\nany = [\"hinton\"]\nfields = [\"authors\"]\n\
             [[alert]]\nname = \"pub\"\nany = [\"al jazeera\"]\nfields = [\"source\"]\n\
             [[alert]]\nname = \"default\"\nany = [\"hinton\"]\n",
        );
        let mut e = entry("Unrelated", "nothing here");
        e.authors = vec!["Geoffrey Hinton".into(), "Someone Else".into()];
        e.source = Some("Al Jazeera".into());
        assert_eq!(names(&set, &e, "s"), ["a", "pub", "default"]);
        let e = entry("On Hinton's ideas", "");
        assert_eq!(names(&set, &e, "s"), ["t", "default"]);
        let e = entry("x", "Hinton said");
        assert_eq!(names(&set, &e, "s"), ["default"]);
    }

    #[test]
    fn phrase_does_not_span_two_authors() {
        let set =
            rules("[[alert]]\nname = \"a\"\nany = [\"smith jane\"]\nfields = [\"authors\"]\n");
        let mut e = entry("x", "");
        e.authors = vec!["John Smith".into(), "Jane Doe".into()];
        assert!(set.matches(&e, "s").is_empty());
    }

    #[test]
    fn sources_filter_by_lookout_source() {
        let set = rules(
            "[[source]]\nname = \"hf\"\nkind = \"folder\"\npath = \"/tmp/x\"\n\
             [[source]]\nname = \"ait\"\nkind = \"folder\"\npath = \"/tmp/y\"\n\
             [[alert]]\nname = \"r\"\nany = [\"llm\"]\nsources = [\"hf\"]\n",
        );
        let e = entry("An LLM", "");
        assert_eq!(names(&set, &e, "hf"), ["r"]);
        assert!(names(&set, &e, "ait").is_empty());
    }

    #[test]
    fn unicode_case_folding() {
        let set = rules("[[alert]]\nname = \"u\"\nany = [\"Ärzte\", \"ΣΟΦΙΑ\", \"œuvre*\"]\n");
        assert!(hit(&set, "Studie über ärzte"));
        assert!(hit(&set, "ÄRZTE"));
        // Decomposed "A" + combining diaeresis is composed before matching.
        assert!(hit(&set, "A\u{308}rzte"));
        assert!(hit(&set, "Η σοφια"));
        assert!(!hit(&set, "σοφιας"), "not a prefix keyword");
        assert!(hit(&set, "Œuvres complètes"));
        assert!(!hit(&set, "Ärztekammer"));
        let greek = rules("[[alert]]\nname = \"g\"\nany = [\"σοφος\"]\n");
        assert!(hit(&greek, "ΣΟΦΟΣ"), "final sigma folds to sigma");
        assert!(hit(&greek, "σοφος"));
    }

    #[test]
    fn defaults_notify_log_and_digest_seconds() {
        let set = rules(
            "[[notifier]]\nname = \"hook\"\nkind = \"webhook\"\nurl = \"http://127.0.0.1:1/\"\n\
             [[alert]]\nname = \"a\"\nany = [\"x\"]\n\
             [[alert]]\nname = \"b\"\nany = [\"x\"]\nnotify = [\"hook\", \"log\", \"hook\"]\ndigest = \"15m\"\n",
        );
        let m = set.matches(&entry("x", ""), "s");
        assert_eq!(m[0].notifiers, ["log"]);
        assert_eq!(m[0].digest_secs, None);
        assert_eq!(m[1].notifiers, ["hook", "log"]);
        assert_eq!(m[1].digest_secs, Some(900));
        let feed_only = rules("[[alert]]\nname = \"f\"\nany = [\"x\"]\nnotify = []\n");
        let m = feed_only.matches(&entry("x", ""), "s");
        assert!(m[0].notifiers.is_empty(), "notify = [] is feed-only");
    }

    #[test]
    fn bad_regex_error_names_the_rule() {
        let mut config = Config::parse("[[alert]]\nname = \"ok\"\nany = [\"x\"]\n", "t").unwrap();
        let mut bad = config.alerts[0].clone();
        bad.name = toml::Spanned::new(0..0, "broken".to_owned());
        bad.regex = vec![
            toml::Spanned::new(10..14, "fine".to_owned()),
            toml::Spanned::new(20..29, "(unclosed".to_owned()),
        ];
        config.alerts.push(bad);
        let err = RuleSet::compile(&config.alerts).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("alert \"broken\": bad regex #2"), "{text}");
        assert!(text.contains("20..29"), "{text}");
        assert!(matches!(err, RuleError::BadRegex { number: 2, .. }));
    }

    #[test]
    fn empty_keyword_is_refused() {
        let mut config = Config::parse("[[alert]]\nname = \"r\"\nany = [\"x\"]\n", "t").unwrap();
        config.alerts[0].all = vec![" * ".to_owned()];
        let err = RuleSet::compile(&config.alerts).unwrap_err();
        assert!(
            matches!(err, RuleError::EmptyKeyword { list: "all", .. }),
            "{err}"
        );
    }

    #[test]
    fn ten_thousand_rules_compile_and_match_correctly() {
        let mut toml = String::new();
        for i in 0..10_000 {
            toml.push_str(&format!(
                "[[alert]]\nname = \"r{i}\"\nany = [\"word{i}\", \"shared phrase {i}\"]\nnone = [\"veto{i}\"]\n"
            ));
            if i % 1000 == 0 {
                toml.push_str(&format!("regex = ['\\bpat{i}x+\\b']\n"));
            }
        }
        let set = rules(&toml);
        assert_eq!(set.len(), 10_000);
        assert_eq!(
            names(&set, &entry("about word1234 today", ""), "s"),
            ["r1234"]
        );
        assert!(names(&set, &entry("about word12340x", ""), "s").is_empty());
        assert_eq!(
            names(&set, &entry("Word9999 and shared  phrase 17", ""), "s"),
            ["r17", "r9999"]
        );
        assert!(names(&set, &entry("word5 veto5", ""), "s").is_empty());
        assert_eq!(names(&set, &entry("PAT3000XXX", ""), "s"), ["r3000"]);
        assert!(names(&set, &entry("nothing relevant", "at all"), "s").is_empty());
    }
}
