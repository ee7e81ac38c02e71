//! The one date parser: every format's date text goes through here.
