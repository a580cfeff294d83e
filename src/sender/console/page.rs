//! The console's web page: server-rendered HTML, one stylesheet and one
//! script (and the health view's), all embedded in the crate (no CDN, no build step).

use axum::response::{IntoResponse, Response};
use http::{HeaderValue, header};

const SCRIPT: &str = include_str!("assets/console.js");
const INBOX_SCRIPT: &str = include_str!("assets/inbox.js");
const STYLE: &str = include_str!("assets/console.css");
const TEMPLATE: &str = include_str!("assets/console.html");

/// The page may load its own script and style and call its own API; nothing
/// else (no inline script, so injected markup cannot run).
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; \
     frame-ancestors 'none'";

/// Escapes text for HTML element content and double-quoted attributes.
pub(super) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

pub(super) fn with_headers(mut res: Response, content_type: &'static str) -> Response {
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    res
}

pub(super) fn render(
    base: &str,
    event_types: &[String],
    scheme_names: &str,
    refresh_seconds: u32,
    token_required: bool,
) -> Response {
    let checkboxes: String = event_types
        .iter()
        .map(|t| {
            let t = escape(t);
            format!(
                "<label class=\"check\"><input type=\"checkbox\" name=\"events\" value=\"{t}\"> <code>{t}</code></label>\n"
            )
        })
        .collect();
    // The first name is the default (native).
    let scheme_options: String = scheme_names
        .split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(|n| {
            let n = escape(n);
            format!("<option value=\"{n}\">{n}</option>\n")
        })
        .collect();
    let html = TEMPLATE
        .replace("{{base}}", &escape(base))
        .replace("{{event_checkboxes}}", &checkboxes)
        .replace("{{scheme_options}}", &scheme_options)
        .replace("{{refresh_seconds}}", &refresh_seconds.to_string())
        .replace(
            "{{token_required}}",
            if token_required { "true" } else { "false" },
        );
    let mut res = with_headers(html.into_response(), "text/html; charset=utf-8");
    res.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    res.headers_mut().insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    res
}

pub(super) async fn script() -> Response {
    with_headers(SCRIPT.into_response(), "text/javascript; charset=utf-8")
}

/// The inbox view's script; it shows the view only when the API answers
/// that an inbox is attached.
pub(super) async fn inbox_script() -> Response {
    with_headers(
        INBOX_SCRIPT.into_response(),
        "text/javascript; charset=utf-8",
    )
}

pub(super) async fn style() -> Response {
    with_headers(STYLE.into_response(), "text/css; charset=utf-8")
}

#[cfg(test)]
mod tests {
    use super::escape;

    #[test]
    fn escape_neutralises_markup_and_attribute_quotes() {
        assert_eq!(
            escape(r#"<script>alert("x")</script>&'"#),
            "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;&#39;"
        );
    }
}
