//! The install story holds together: the production config the Debian package ships is
//! valid (and so are the examples commented in it), and the package, the systemd unit
//! and the config agree on paths.

use std::path::Path;

use lookout::config::Config;

const PRODUCTION_CONFIG: &str = include_str!("../../packaging/lookout.toml");
const UNIT: &str = include_str!("../../systemd/lookout.service");
const MANIFEST: &str = include_str!("../../Cargo.toml");

/// `text` with the commented TOML block that starts at the line `# {opening}`
/// uncommented, up to the next blank line.
fn uncomment_block(text: &str, opening: &str) -> String {
    let mut out = String::new();
    let mut inside = false;
    for line in text.lines() {
        if line == format!("# {opening}") {
            inside = true;
        } else if line.trim().is_empty() {
            inside = false;
        }
        match line.strip_prefix("# ").filter(|_| inside) {
            Some(code) => out.push_str(code),
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

#[test]
fn production_config_is_valid_and_uses_the_state_directory() {
    let cfg = Config::parse(PRODUCTION_CONFIG, "packaging/lookout.toml")
        .unwrap_or_else(|e| panic!("shipped config is refused: {e}"));
    assert_eq!(cfg.state_dir, Path::new("/var/lib/lookout"));
    assert_eq!(cfg.server.listen.to_string(), "127.0.0.1:8080");
    assert!(cfg.server.token.is_none());
}

#[test]
fn commented_drop_folder_in_production_config_is_valid_when_uncommented() {
    let text = uncomment_block(PRODUCTION_CONFIG, "[[source]]");
    let cfg = Config::parse(&text, "packaging/lookout.toml (uncommented)")
        .unwrap_or_else(|e| panic!("uncommented examples are refused: {e}\n{text}"));
    let drop = cfg.source("drop").expect("the drop source");
    assert_eq!(drop.kind.name(), "folder");
    assert_eq!(
        drop.folder().map(|f| f.path.as_path()),
        Some(Path::new("/var/lib/lookout/drop"))
    );
    assert!(cfg.source("hf-daily").is_some(), "the HTTP example too");
}

#[test]
fn unit_runs_the_packaged_binary_on_the_packaged_config() {
    let exec = UNIT
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .expect("ExecStart");
    assert_eq!(
        exec,
        "/usr/bin/lookout run --config /etc/lookout/lookout.toml"
    );
    assert!(UNIT.lines().any(|l| l == "Type=notify"));
    assert!(UNIT.lines().any(|l| l == "StateDirectory=lookout"));
}

#[test]
fn deb_metadata_installs_binary_config_unit_and_docs() {
    let manifest: toml::Table = toml::from_str(MANIFEST).expect("Cargo.toml parses");
    let deb = manifest
        .get("package")
        .and_then(|p| p.get("metadata"))
        .and_then(|m| m.get("deb"))
        .expect("[package.metadata.deb]");
    let depends = deb.get("depends").and_then(|d| d.as_str()).unwrap_or("");
    assert!(depends.contains("$auto") && depends.contains("ca-certificates"));
    let assets: Vec<(String, String)> = deb
        .get("assets")
        .and_then(|a| a.as_array())
        .expect("assets")
        .iter()
        .filter_map(|a| {
            let a = a.as_array()?;
            Some((
                a.first()?.as_str()?.to_owned(),
                a.get(1)?.as_str()?.to_owned(),
            ))
        })
        .collect();
    let has = |src: &str, dest: &str| assets.iter().any(|(s, d)| s == src && d == dest);
    assert!(has("target/release/lookout", "usr/bin/"), "{assets:?}");
    assert!(
        has("packaging/lookout.toml", "etc/lookout/lookout.toml"),
        "{assets:?}"
    );
    assert!(
        has("target/assets/lookout.1.gz", "usr/share/man/man1/"),
        "{assets:?}"
    );
    // The unit comes in through systemd-units, from the directory the unit lives in.
    let units = deb.get("systemd-units").expect("systemd-units");
    assert_eq!(
        units.get("unit-scripts").and_then(|u| u.as_str()),
        Some("systemd")
    );
    assert!(Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("systemd/lookout.service")
        .is_file());
}
