//! Terminal styling: colour only when stdout is a terminal and `NO_COLOR` is
//! unset.

use std::io::IsTerminal as _;

use webhook_guard::diagnose::Finding;

/// ANSI styling that turns itself off for pipes and files.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Style {
    color: bool,
}

impl Style {
    /// Colour when stdout is a terminal and `NO_COLOR` is not set.
    pub(crate) fn for_stdout() -> Self {
        Self {
            color: std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
        }
    }

    /// Never colour.
    pub(crate) fn plain() -> Self {
        Self { color: false }
    }

    fn paint(self, code: &str, text: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_owned()
        }
    }

    pub(crate) fn ok(self, text: &str) -> String {
        self.paint("32", text)
    }

    pub(crate) fn bad(self, text: &str) -> String {
        self.paint("31", text)
    }

    pub(crate) fn warn(self, text: &str) -> String {
        self.paint("33", text)
    }

    pub(crate) fn dim(self, text: &str) -> String {
        self.paint("2", text)
    }

    pub(crate) fn bold(self, text: &str) -> String {
        self.paint("1", text)
    }
}

/// Unix seconds now.
pub(crate) fn now_unix() -> i64 {
    webhook_guard::Clock::now_unix(&webhook_guard::SystemClock)
}

/// `HH:MM:SS` (UTC) of now, for log lines.
pub(crate) fn clock_time() -> String {
    let now = time::OffsetDateTime::now_utc();
    format!("{:02}:{:02}:{:02}", now.hour(), now.minute(), now.second())
}

/// A finding in the words of the command line: scheme advice names the flag.
pub(crate) fn render_finding(finding: &Finding) -> String {
    match finding {
        Finding::LooksLikeOtherScheme {
            scheme,
            provider,
            header,
            verifies,
        } => {
            let mut text = format!(
                "this looks like a {provider} delivery (it carries `{header}`), use --scheme {scheme}"
            );
            if *verifies {
                text.push_str(" (it verifies with that scheme)");
            }
            text
        }
        other => other.to_string(),
    }
}
