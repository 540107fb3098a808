//! The console's files, embedded in the binary.

/// (name, content type, bytes)
type File = (&'static str, &'static str, &'static [u8]);

macro_rules! web {
    ($name:literal, $mime:expr) => {
        ($name, $mime, include_bytes!(concat!("../../web/", $name)))
    };
}

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const TEXT: &str = "text/plain; charset=utf-8";

const PAGES: &[File] = &[
    web!("index.html", HTML),
    web!("viewer.html", HTML),
    web!("host.html", HTML),
    web!("guest.html", HTML),
    web!("dashboard.html", HTML),
    web!("console.css", "text/css; charset=utf-8"),
    web!("console.js", JS),
    web!("players.js", JS),
];

const VENDORED: &[File] = &[
    web!("vendor/mpegts.js", JS),
    web!("vendor/mpegts.LICENSE", TEXT),
    web!("vendor/hls.min.js", JS),
    web!("vendor/hls.LICENSE", TEXT),
    web!("vendor/VERSIONS", TEXT),
];

fn find(files: &[File], name: &str) -> Option<(&'static str, &'static [u8])> {
    files
        .iter()
        .find(|(n, _, _)| *n == name)
        .map(|(_, mime, body)| (*mime, *body))
}

pub fn page(name: &str) -> Option<(&'static str, &'static [u8])> {
    find(PAGES, name)
}

pub fn vendored(name: &str) -> Option<(&'static str, &'static [u8])> {
    find(VENDORED, &format!("vendor/{name}"))
}
