//! A source whose page still parses but looks wrong is degraded, not ok (issue 14):
//! a page with no entries where the source had some, shown on `/healthz` (a flag and a
//! count, never the text, which may quote the page) and on the status page.

use std::time::Duration;

use crate::common::*;

#[test]
fn a_page_that_empties_a_source_marks_it_degraded_until_a_good_page() {
    let setup = Setup::new("");
    let daemon = Daemon::start(&setup.config);
    let source = |body: &[u8]| -> serde_json::Value {
        let v: serde_json::Value = serde_json::from_slice(body).expect("healthz JSON");
        v["sources"]["drop"].clone()
    };
    let healthz = || get(&format!("{}/healthz", daemon.base), &[]).2;

    setup.drop_file("first.xml", &fixture("feed_rss2.xml"));
    setup.wait_filed("processed", "first.xml");
    assert_eq!(source(&healthz())["degraded"], false);

    let empty = b"<?xml version=\"1.0\"?><rss version=\"2.0\"><channel><title>Notebook</title>\
                  <link>https://notebook.example.org/</link><description>d</description>\
                  </channel></rss>";
    setup.drop_file("emptied.xml", empty);
    setup.wait_filed("processed", "emptied.xml");
    let drop = wait_for(Duration::from_secs(10), "the source degraded", || {
        let s = source(&healthz());
        (s["degraded"] == true).then_some(s)
    });
    assert_eq!(drop["ok"], true, "degraded, not failing");
    assert_eq!(drop["warnings"], 1);
    let (_, _, page) = get(&daemon.base, &[]);
    let page = String::from_utf8(page).unwrap();
    assert!(page.contains("degraded"), "status page badge");
    assert!(page.contains("no entries"), "status page says why");

    setup.drop_file("again.xml", &fixture("feed.json"));
    setup.wait_filed("processed", "again.xml");
    wait_for(Duration::from_secs(10), "the source ok again", || {
        (source(&healthz())["degraded"] == false).then_some(())
    });
    daemon.stop(Duration::from_secs(10));
}
