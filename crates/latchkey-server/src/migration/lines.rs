//! NDJSON lines from a streamed body, one at a time, never the whole body in
//! memory: a line over the limit is reported and skipped to its end.

use axum::body::{Body, Bytes};
use http_body_util::BodyExt;

/// One line of the body.
#[derive(Debug)]
pub enum Line {
    /// Its text (without the newline).
    Text(String),
    /// Longer than the limit: skipped.
    TooLong,
    /// Not UTF-8.
    NotUtf8,
}

/// Splits a body into lines as its frames arrive.
#[derive(Debug)]
pub struct Lines {
    body: Body,
    buffer: Vec<u8>,
    skipping: bool,
    done: bool,
    max: usize,
    number: u64,
}

impl Lines {
    /// Lines of `body`, each at most `max` bytes.
    pub fn new(body: Body, max: usize) -> Self {
        Lines {
            body,
            buffer: Vec::new(),
            skipping: false,
            done: false,
            max,
            number: 0,
        }
    }

    /// The next non-empty line and its number (from 1), `Ok(None)` at the
    /// end; `Err` when the body could not be read.
    pub async fn next(&mut self) -> Result<Option<(u64, Line)>, ()> {
        loop {
            if let Some(pos) = self.buffer.iter().position(|b| *b == b'\n') {
                let mut raw: Vec<u8> = self.buffer.drain(..=pos).collect();
                raw.pop();
                self.number += 1;
                if std::mem::take(&mut self.skipping) {
                    return Ok(Some((self.number, Line::TooLong)));
                }
                if let Some(line) = self.line(raw) {
                    return Ok(Some((self.number, line)));
                }
                continue;
            }
            if self.buffer.len() > self.max {
                // Past the limit with no newline yet: drop what is held and
                // skip to the end of this line.
                self.buffer.clear();
                self.skipping = true;
            }
            if self.done {
                if self.buffer.is_empty() && !self.skipping {
                    return Ok(None);
                }
                let raw = std::mem::take(&mut self.buffer);
                self.number += 1;
                if std::mem::take(&mut self.skipping) {
                    return Ok(Some((self.number, Line::TooLong)));
                }
                match self.line(raw) {
                    Some(line) => return Ok(Some((self.number, line))),
                    None => return Ok(None),
                }
            }
            match self.body.frame().await {
                None => self.done = true,
                Some(Err(_)) => return Err(()),
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        self.push(data);
                    }
                }
            }
        }
    }

    fn push(&mut self, data: Bytes) {
        if self.skipping {
            // Keep only what follows the end of the skipped line.
            match data.iter().position(|b| *b == b'\n') {
                Some(pos) => {
                    self.buffer.clear();
                    // Put the newline back so the skipped line is counted.
                    self.buffer.extend_from_slice(&data[pos..]);
                }
                None => return,
            }
            return;
        }
        self.buffer.extend_from_slice(&data);
    }

    /// `None` for a blank line.
    fn line(&self, mut raw: Vec<u8>) -> Option<Line> {
        if raw.last() == Some(&b'\r') {
            raw.pop();
        }
        if raw.iter().all(u8::is_ascii_whitespace) {
            return None;
        }
        Some(match String::from_utf8(raw) {
            Ok(text) => Line::Text(text),
            Err(_) => Line::NotUtf8,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn all(chunks: Vec<&'static [u8]>, max: usize) -> Vec<(u64, String)> {
        let stream = tokio_stream::iter(
            chunks
                .into_iter()
                .map(|c| Ok::<_, std::io::Error>(Bytes::from_static(c))),
        );
        let mut lines = Lines::new(Body::from_stream(stream), max);
        let mut out = Vec::new();
        while let Some((n, line)) = lines.next().await.unwrap() {
            out.push((
                n,
                match line {
                    Line::Text(t) => t,
                    Line::TooLong => "<too long>".into(),
                    Line::NotUtf8 => "<not utf-8>".into(),
                },
            ));
        }
        out
    }

    #[tokio::test]
    async fn lines_across_frames_blank_lines_crlf_and_a_last_line_without_newline() {
        let got = all(
            vec![b"{\"a\"", b":1}\r\n\n  \n{\"b\":2}\n{\"c\"", b":3}"],
            100,
        )
        .await;
        assert_eq!(
            got,
            vec![
                (1, "{\"a\":1}".to_owned()),
                (4, "{\"b\":2}".to_owned()),
                (5, "{\"c\":3}".to_owned())
            ]
        );
    }

    #[tokio::test]
    async fn a_long_line_is_skipped_and_counted_and_the_next_one_read() {
        let got = all(
            vec![
                b"short\n",
                b"0123456789",
                b"0123456789",
                b"01\nafter\n",
                b"\xff\xfe\n",
            ],
            16,
        )
        .await;
        assert_eq!(
            got,
            vec![
                (1, "short".to_owned()),
                (2, "<too long>".to_owned()),
                (3, "after".to_owned()),
                (4, "<not utf-8>".to_owned())
            ]
        );
        let got = all(vec![b"0123456789012345678901234"], 16).await;
        assert_eq!(got, vec![(1, "<too long>".to_owned())]);
    }
}
