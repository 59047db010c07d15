//! A small Server-Sent Events decoder for OpenCode's streams, with a size limit.
//!
//! OpenCode sends only `data:` lines, so only `data` fields are kept (`event:`,
//! `id:`, `retry:` and comments are skipped). It is our own rather than a general
//! SSE crate's because of how it scales: the parser we used before buffered an
//! unfinished event without limit and re-read the whole buffer on every chunk, so
//! one big event (a `write` tool snapshot carries the whole file) cost quadratic
//! time, and a stream that never ended an event grew until memory ran out while the
//! idle timeout never fired. This one looks at each byte once and gives up on an
//! event larger than its limit.

use futures::{Stream, StreamExt};

/// Most bytes one event may take on the wire. Real events are small, except
/// snapshots of tool parts (a `write` carries the whole file), hence the margin.
pub(crate) const MAX_EVENT_BYTES: usize = 16 << 20;

/// Why an event stream's body was given up.
#[derive(Debug)]
pub(crate) enum BodyError {
    /// The connection failed.
    Transport(reqwest::Error),
    /// An event grew past its limit without ending.
    EventTooLarge {
        /// The limit, in bytes.
        limit: usize,
    },
}

impl std::fmt::Display for BodyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BodyError::Transport(err) => write!(f, "{err}"),
            BodyError::EventTooLarge { limit } => {
                write!(f, "an event exceeded {} KiB without ending", limit >> 10)
            }
        }
    }
}

/// The `data` of each event of `body`, in order. Ends after the first error.
pub(crate) fn data_events<B>(
    body: impl Stream<Item = reqwest::Result<B>> + Send + 'static,
    max_event_bytes: usize,
) -> impl Stream<Item = Result<String, BodyError>> + Send + 'static
where
    B: AsRef<[u8]> + Send + 'static,
{
    async_stream::stream! {
        let mut decoder = Decoder::new(max_event_bytes);
        let mut body = std::pin::pin!(body);
        while let Some(chunk) = body.next().await {
            let chunk = match chunk {
                Ok(chunk) => chunk,
                Err(err) => {
                    yield Err(BodyError::Transport(err.without_url()));
                    return;
                }
            };
            match decoder.feed(chunk.as_ref()) {
                Ok(events) => {
                    for data in events {
                        yield Ok(data);
                    }
                }
                Err(err) => {
                    yield Err(err);
                    return;
                }
            }
        }
    }
}

/// The decoder's state between chunks.
#[derive(Debug)]
pub(crate) struct Decoder {
    max_event_bytes: usize,
    /// The line being received, without its end.
    line: Vec<u8>,
    /// The event's `data` lines so far, joined by `\n`.
    data: Vec<u8>,
    /// Whether a `data` field was seen since the last event.
    has_data: bool,
    /// The last byte was a CR: an LF right after it ends no second line.
    after_cr: bool,
}

impl Decoder {
    pub(crate) fn new(max_event_bytes: usize) -> Self {
        Decoder {
            max_event_bytes,
            line: Vec::new(),
            data: Vec::new(),
            has_data: false,
            after_cr: false,
        }
    }

    /// Takes the next chunk; returns the data of the events it completed.
    /// Lines end with LF, CR or CRLF; a blank line ends an event.
    pub(crate) fn feed(&mut self, chunk: &[u8]) -> Result<Vec<String>, BodyError> {
        let mut events = Vec::new();
        for &byte in chunk {
            let lf_of_crlf = self.after_cr && byte == b'\n';
            self.after_cr = byte == b'\r';
            match byte {
                _ if lf_of_crlf => {}
                b'\r' | b'\n' => self.end_line(&mut events),
                _ => {
                    self.line.push(byte);
                    if self.line.len() + self.data.len() > self.max_event_bytes {
                        return Err(BodyError::EventTooLarge { limit: self.max_event_bytes });
                    }
                }
            }
        }
        Ok(events)
    }

    fn end_line(&mut self, events: &mut Vec<String>) {
        if self.line.is_empty() {
            if std::mem::take(&mut self.has_data) {
                events.push(String::from_utf8_lossy(&self.data).into_owned());
            }
            self.data.clear();
            return;
        }
        let line = std::mem::take(&mut self.line);
        let (field, value) = match line.iter().position(|&b| b == b':') {
            Some(colon) => {
                let (field, rest) = line.split_at(colon);
                let value = rest.get(1..).unwrap_or_default();
                (field, value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (line.as_slice(), &[][..]),
        };
        // A line starting with a colon is a comment: its field is empty.
        if field == b"data" {
            if self.has_data {
                self.data.push(b'\n');
            }
            self.data.extend_from_slice(value);
            self.has_data = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(chunks: &[&[u8]]) -> Vec<String> {
        let mut decoder = Decoder::new(1024);
        chunks.iter().flat_map(|chunk| decoder.feed(chunk).expect("small events")).collect()
    }

    #[test]
    fn reads_data_lines_with_every_line_end() {
        assert_eq!(decode(&[b"data: {\"a\":1}\n\n"]), ["{\"a\":1}"]);
        assert_eq!(decode(&[b"data: a\r\n\r\ndata:b\r\r"]), ["a", "b"]);
        assert_eq!(decode(&[b"data: one\ndata: two\n\n"]), ["one\ntwo"]);
        assert_eq!(decode(&[b"data:  two spaces\n\n"]), [" two spaces"]);
    }

    #[test]
    fn events_may_be_split_anywhere_across_chunks() {
        let whole: &[u8] = b"data: first\r\n\r\ndata: second\n\n";
        for cut in 0..whole.len() {
            let (a, b) = whole.split_at(cut);
            assert_eq!(decode(&[a, b]), ["first", "second"], "cut at {cut}");
        }
    }

    #[test]
    fn other_fields_comments_and_empty_events_are_skipped() {
        let stream: &[u8] = b": comment\n\nevent: x\nid: 7\nretry: 10\n\ndata\n\ndata: kept\n\n";
        assert_eq!(decode(&[stream]), ["", "kept"], "a bare `data` line is an empty event");
        assert!(decode(&[b"data: unfinished\n"]).is_empty());
    }

    #[test]
    fn an_event_over_the_limit_is_an_error() {
        let mut decoder = Decoder::new(16);
        assert_eq!(decoder.feed(b"data: 0123456789\n\n").expect("16 bytes fit"), ["0123456789"]);
        assert_eq!(decoder.feed(b"data: 01234").expect("not yet"), Vec::<String>::new());
        assert!(matches!(decoder.feed(b"56789X"), Err(BodyError::EventTooLarge { limit: 16 })));
        // Many small lines of one event count together.
        let mut decoder = Decoder::new(16);
        assert!(decoder.feed(b"data: 12345\ndata: 12345\ndata: 12345\n").is_err());
    }
}
