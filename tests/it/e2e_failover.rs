//! The failover test of issue 17: two replicas on one PostgreSQL, 20 HTTP sources whose
//! pages grow, a webhook; one replica is SIGKILLed ten times at random moments (and
//! started again) while pages change and alerts fire. Then every entry is in the feed
//! exactly once, both replicas serve the same feed, and every alert was delivered, a
//! repeat only under its own Idempotency-Key. Skipped, with one line for the run,
//! where PostgreSQL is not installed.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use rand::Rng;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

use crate::common::*;

const SOURCES: usize = 20;
/// Items each page grows to, one more per fetch.
const ITEMS: usize = 5;

/// An RSS page of source `source` that holds one item more at each request, up to
/// [`ITEMS`]; the first request (the baseline fetch, which never alerts) gets none.
struct Growing {
    source: usize,
    requests: AtomicUsize,
}

impl Respond for Growing {
    fn respond(&self, _request: &Request) -> ResponseTemplate {
        let n = self.requests.fetch_add(1, Ordering::SeqCst).min(ITEMS);
        let items: String = (0..n)
            .map(|k| {
                format!(
                    "<item><title>hot news {s}-{k}</title><link>https://example.org/{s}/{k}</link>\
                     <guid>urn:s{s}:{k}</guid></item>",
                    s = self.source
                )
            })
            .collect();
        ResponseTemplate::new(200)
            .insert_header("content-type", "application/rss+xml")
            .set_body_string(format!(
                "<?xml version=\"1.0\"?><rss version=\"2.0\"><channel><title>s{}</title>\
                 <link>https://example.org/</link><description>d</description>{items}\
                 </channel></rss>",
                self.source
            ))
    }
}

#[test]
fn ten_replica_kills_lose_no_item_and_no_alert() {
    let Some(url) = pg::database() else { return };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let server = rt.block_on(async {
        let server = MockServer::start().await;
        for source in 0..SOURCES {
            Mock::given(method("GET"))
                .and(path(format!("/s{source}")))
                .respond_with(Growing {
                    source,
                    requests: AtomicUsize::new(0),
                })
                .mount(&server)
                .await;
        }
        Mock::given(method("POST"))
            .and(path("/hook"))
            .respond_with(ResponseTemplate::new(200))
            .mount(&server)
            .await;
        server
    });
    let uri = server.uri();
    let mut extra = format!(
        "[store]\nurl = \"{url}\"\n[http]\nmin_host_gap = \"0s\"\n\
         [[notifier]]\nname = \"hook\"\nkind = \"webhook\"\nurl = \"{uri}/hook\"\n\
         [[alert]]\nname = \"hot\"\nany = [\"hot\"]\nnotify = [\"hook\"]\n"
    );
    for source in 0..SOURCES {
        extra.push_str(&format!(
            "[[source]]\nname = \"s{source}\"\nkind = \"http\"\nurl = \"{uri}/s{source}\"\n\
             every = \"1s\"\njitter = \"0s\"\n"
        ));
    }
    let (one, two) = (Setup::new(&extra), Setup::new(&extra));
    let mut replicas = [Daemon::start(&one.config), Daemon::start(&two.config)];
    let mut rng = rand::rng();
    for kill in 0..10 {
        std::thread::sleep(Duration::from_millis(rng.random_range(300..2000)));
        let victim = kill % 2;
        replicas[victim].signal(libc::SIGKILL);
        let config = if victim == 0 {
            &one.config
        } else {
            &two.config
        };
        replicas[victim] = Daemon::start(config);
    }
    let expected = SOURCES * ITEMS;
    let bases: Vec<String> = replicas.iter().map(|r| r.base.clone()).collect();
    // Every page grows to its end (a killed replica's leases lapse first) and every
    // alert goes out.
    let feeds = wait_for(Duration::from_secs(180), "every item in both feeds", || {
        let feeds: Vec<Vec<String>> = bases
            .iter()
            .map(|base| rss_guids(&get(&format!("{base}/feed.xml"), &[]).2))
            .collect();
        feeds.iter().all(|f| f.len() >= expected).then_some(feeds)
    });
    for feed in &feeds {
        let distinct: HashSet<&String> = feed.iter().collect();
        assert_eq!(distinct.len(), feed.len(), "an entry twice in a feed");
        assert_eq!(feed.len(), expected);
    }
    assert_eq!(feeds[0], feeds[1], "both replicas serve the same feed");
    let keys = wait_for(Duration::from_secs(120), "every alert delivered", || {
        let requests = rt.block_on(server.received_requests()).unwrap_or_default();
        let mut keys: HashMap<String, usize> = HashMap::new();
        for request in requests.iter().filter(|r| r.url.path() == "/hook") {
            let key = request
                .headers
                .get("idempotency-key")
                .and_then(|v| v.to_str().ok())
                .expect("every delivery carries its key");
            *keys.entry(key.to_owned()).or_default() += 1;
        }
        (keys.len() >= expected).then_some(keys)
    });
    // At least once, and a repeat (a kill between a send and its mark) only ever under
    // its own key: as many distinct keys as matching entries, no more.
    assert_eq!(keys.len(), expected, "one key per matching entry");
}
