//! The browser app (`ui/`), embedded in the binary.
use rust_embed::RustEmbed;
use std::borrow::Cow;

#[derive(RustEmbed)]
#[folder = "../ui/"]
#[exclude = "tests/*"]
#[exclude = "node_modules/*"]
#[exclude = "package*.json"]
#[exclude = ".*"]
#[exclude = "*.md"]
struct Ui;

pub struct Asset {
    pub body: Cow<'static, [u8]>,
    pub content_type: &'static str,
    /// strong validator: the file's SHA-256, quoted
    pub etag: String,
}

/// The file under `ui/` for a path below `/devtools/` (`""` is `index.html`).
pub fn get(rel: &str) -> Option<Asset> {
    let rel = if rel.is_empty() || rel.ends_with('/') {
        format!("{rel}index.html")
    } else {
        rel.to_string()
    };
    // rust-embed refuses to leave its folder; refuse odd paths before asking anyway
    if rel.starts_with('/')
        || rel.contains('\\')
        || rel
            .split('/')
            .any(|s| s.is_empty() || s == "." || s == "..")
    {
        return None;
    }
    let file = Ui::get(&rel)?;
    let hash = file.metadata.sha256_hash();
    let etag = format!(
        "\"{}\"",
        hash[..16]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    );
    Some(Asset {
        body: file.data,
        content_type: content_type(&rel),
        etag,
    })
}

pub fn content_type(path: &str) -> &'static str {
    let ext = path
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "html" | "htm" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" | "map" => "application/json",
        "webmanifest" => "application/manifest+json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "woff2" => "font/woff2",
        "woff" => "font/woff",
        "wasm" => "application/wasm",
        "txt" | "md" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_is_served_for_the_folder() {
        let a = get("").expect("ui/index.html is embedded");
        assert_eq!(a.content_type, "text/html; charset=utf-8");
        assert!(String::from_utf8_lossy(&a.body).contains("<title>qtap devtools"));
        assert_eq!(a.etag.len(), 34);
        assert_eq!(get("index.html").unwrap().etag, a.etag);
    }

    #[test]
    fn traversal_and_excluded_files_are_not_served() {
        for p in [
            "../Cargo.toml",
            "..%2fCargo.toml",
            "/etc/passwd",
            "a//b",
            "./index.html",
            "tests/unit/x.js",
            "package.json",
            "README.md",
            "nope.js",
        ] {
            assert!(get(p).is_none(), "{p}");
        }
    }

    #[test]
    fn content_types() {
        assert_eq!(content_type("app.js"), "text/javascript; charset=utf-8");
        assert_eq!(content_type("a/b/style.CSS"), "text/css; charset=utf-8");
        assert_eq!(content_type("icon.svg"), "image/svg+xml");
        assert_eq!(content_type("README"), "application/octet-stream");
    }
}
