//! Reading captured requests: a headers file plus a raw body file, or a raw
//! HTTP/1.1 request dump.

use std::io::Read as _;
use std::path::Path;

use http::{HeaderMap, HeaderName, HeaderValue};

use crate::Failure;

/// A request as captured: its headers and its raw body bytes.
#[derive(Debug)]
pub(crate) struct Captured {
    pub(crate) headers: HeaderMap,
    pub(crate) body: Vec<u8>,
    /// Remarks about the capture itself (a `Content-Length` that disagrees
    /// with the body, a chunked body).
    pub(crate) notes: Vec<String>,
}

/// Reads a file, or stdin for `-`, as bytes.
pub(crate) fn read_input(path: &Path) -> Result<Vec<u8>, Failure> {
    if path.as_os_str() == "-" {
        let mut buf = Vec::new();
        std::io::stdin()
            .read_to_end(&mut buf)
            .map_err(|e| Failure::usage(format!("cannot read stdin: {e}")))?;
        Ok(buf)
    } else {
        std::fs::read(path)
            .map_err(|e| Failure::usage(format!("cannot read `{}`: {e}", path.display())))
    }
}

/// Parses `Name: value` lines, as `webhook-guard sign` prints them and as
/// `curl -D` saves them. A leading status or request line and blank lines are
/// skipped.
pub(crate) fn parse_headers_file(text: &[u8], origin: &str) -> Result<HeaderMap, Failure> {
    let text = std::str::from_utf8(text)
        .map_err(|_| Failure::usage(format!("{origin}: the headers file is not UTF-8 text")))?;
    let mut headers = HeaderMap::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() {
            continue;
        }
        if number == 0 && (line.starts_with("HTTP/") || line.contains(" HTTP/")) {
            continue;
        }
        let Some((name, value)) = line.split_once(':') else {
            return Err(Failure::usage(format!(
                "{origin}, line {}: expected `Name: value`",
                number + 1
            )));
        };
        let name = HeaderName::from_bytes(name.trim().as_bytes()).map_err(|_| {
            Failure::usage(format!(
                "{origin}, line {}: `{}` is not a valid header name",
                number + 1,
                name.trim()
            ))
        })?;
        let value = HeaderValue::from_str(value.trim()).map_err(|_| {
            Failure::usage(format!(
                "{origin}, line {}: the value of `{name}` is not a valid header value",
                number + 1
            ))
        })?;
        headers.append(name, value);
    }
    Ok(headers)
}

/// Parses a raw HTTP/1.1 request: request line, headers, blank line, body.
/// Everything after the blank line is the body, byte for byte.
pub(crate) fn parse_raw_request(raw: &[u8], origin: &str) -> Result<Captured, Failure> {
    let mut slots = vec![httparse::EMPTY_HEADER; 64];
    let (head_len, parsed) = loop {
        let mut request = httparse::Request::new(&mut slots);
        match request.parse(raw) {
            Ok(httparse::Status::Complete(len)) => {
                let parsed: Vec<(String, Vec<u8>)> = request
                    .headers
                    .iter()
                    .map(|h| (h.name.to_owned(), h.value.to_vec()))
                    .collect();
                break (len, parsed);
            }
            Ok(httparse::Status::Partial) => {
                return Err(Failure::usage(format!(
                    "{origin}: the request dump ends before the blank line that closes the headers"
                )));
            }
            Err(httparse::Error::TooManyHeaders) if slots.len() < 1024 => {
                slots = vec![httparse::EMPTY_HEADER; slots.len() * 4];
            }
            Err(e) => {
                return Err(Failure::usage(format!(
                    "{origin}: not an HTTP/1.1 request dump ({e})"
                )));
            }
        }
    };
    let mut headers = HeaderMap::new();
    for (name, value) in parsed {
        let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
            Failure::usage(format!("{origin}: `{name}` is not a valid header name"))
        })?;
        let value = HeaderValue::from_bytes(&value).map_err(|_| {
            Failure::usage(format!(
                "{origin}: the value of `{name}` is not a valid header value"
            ))
        })?;
        headers.append(name, value);
    }
    let body = raw[head_len..].to_vec();
    let mut notes = Vec::new();
    if let Some(declared) = headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<usize>().ok())
    {
        if declared != body.len() {
            notes.push(format!(
                "the dump's Content-Length is {declared} but it holds {} body bytes: the body file was changed after capture, or the capture is cut short",
                body.len()
            ));
        }
    }
    if headers
        .get(http::header::TRANSFER_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"))
    {
        notes.push(
            "the body is chunked: chunk sizes are part of the dump, not of the signed body; \
             save the decoded body and use --headers and --body"
                .to_owned(),
        );
    }
    Ok(Captured {
        headers,
        body,
        notes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_file_skips_status_line_and_blank_lines() {
        let headers = parse_headers_file(
            b"HTTP/1.1 200 OK\r\nX-Webhook-Id: evt_1\r\n\r\nx-webhook-timestamp: 17\n",
            "test",
        )
        .unwrap();
        assert_eq!(headers["x-webhook-id"], "evt_1");
        assert_eq!(headers["x-webhook-timestamp"], "17");
        assert!(parse_headers_file(b"no colon here\n", "test").is_err());
    }

    #[test]
    fn raw_dump_keeps_body_bytes_and_flags_length() {
        let raw = b"POST /hook HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}\n";
        let captured = parse_raw_request(raw, "test").unwrap();
        assert_eq!(captured.body, b"{}\n");
        assert_eq!(captured.notes.len(), 1);
        assert!(parse_raw_request(b"POST / HTTP/1.1\r\nHost: x\r\n", "test").is_err());
    }
}
