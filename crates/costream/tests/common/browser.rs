//! Running the tests/browser scripts (headless Chromium driven by
//! playwright-core), for every test binary that drives a browser.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::process::Command;

pub const BROWSER_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/browser");
pub const CHROMIUM: &str = "/usr/bin/chromium";

/// Fails (never skips) when the browser or the node project is missing: these
/// tests are part of the suite, and scripts/test installs what they need.
fn require_browser_tools() {
    assert!(
        Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing: run scripts/test (it installs Debian's chromium) or apt-get install chromium"
    );
    assert!(
        Path::new(BROWSER_DIR).join("node_modules/playwright-core").exists(),
        "tests/browser/node_modules/playwright-core is missing: run scripts/test (or `npm ci` in tests/browser)"
    );
}

/// One browser run at a time: several Chromiums decoding at once on a small
/// machine would measure the machine, not the server.
static BROWSER_TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Runs a tests/browser script and returns the JSON line it printed last.
/// The script bounds its own run with `--timeout`; this bound is the backstop.
pub async fn run_node_script(script: &str, args: &[String], limit: Duration) -> serde_json::Value {
    require_browser_tools();
    let _turn = BROWSER_TURN.lock().await;
    let child = Command::new("node")
        .arg(script)
        .args(args)
        .current_dir(BROWSER_DIR)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("node is installed");
    let out = tokio::time::timeout(limit, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("{script} did not finish in {limit:?}"))
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with('{'));
    let json: serde_json::Value = line
        .and_then(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| {
            panic!(
                "{script} printed no JSON line (exit {:?})\nstdout:\n{stdout}\nstderr:\n{stderr}",
                out.status.code()
            )
        });
    // Shown with --nocapture, and with the output of a failing test.
    if !stderr.trim().is_empty() {
        eprintln!("{script} stderr:\n{stderr}");
    }
    eprintln!("{script}: {json}");
    // The script's exit status and its "ok" must agree.
    assert_eq!(
        out.status.success(),
        json["ok"] == true,
        "exit {:?} but {json}",
        out.status.code()
    );
    json
}
