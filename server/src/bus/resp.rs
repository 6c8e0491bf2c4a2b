//! RESP2, the Redis serialization protocol, sans-IO: commands encoded as arrays of bulk
//! strings, replies and pub/sub pushes decoded from a byte buffer the caller owns.
//!
//! The wire format (Redis protocol specification, "RESP protocol description"): every value
//! starts with a type byte and ends its header line with CRLF.
//!
//! | byte | type | example |
//! | --- | --- | --- |
//! | `+` | simple string | `+OK\r\n` |
//! | `-` | error | `-ERR unknown command\r\n` |
//! | `:` | integer | `:3\r\n` |
//! | `$` | bulk string (`-1`: null) | `$5\r\nhello\r\n` |
//! | `*` | array (`-1`: null) | `*2\r\n$3\r\nfoo\r\n:1\r\n` |
//!
//! Running out of input is not an error: [`decode`] returns [`Decoded::Partial`], consumes
//! nothing, and is called again with more bytes (every cut prefix is tested). Sizes are
//! bounded by [`Limits`], so a broken or hostile server cannot make us allocate without end.

use std::fmt;

/// The largest header line we read (type byte, digits, CRLF, or a simple string or error).
const MAX_LINE_LEN: usize = 64 * 1024;

/// Bounds on what [`decode`] accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest bulk string, in bytes.
    pub max_bulk_len: usize,
    /// Most elements in one array.
    pub max_array_len: usize,
    /// Deepest nesting of arrays (1: an array of scalars).
    pub max_depth: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bulk_len: 1 << 20,
            max_array_len: 1024,
            max_depth: 4,
        }
    }
}

/// One RESP2 value, borrowing its bytes from the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value<'a> {
    /// `+OK`.
    Simple(&'a [u8]),
    /// `-ERR ...`: the server refused a command.
    Error(&'a [u8]),
    /// `:3`.
    Integer(i64),
    /// `$5 hello`; `None` is the null bulk string `$-1`.
    Bulk(Option<&'a [u8]>),
    /// `*2 ...`; `None` is the null array `*-1`.
    Array(Option<Vec<Value<'a>>>),
}

impl<'a> Value<'a> {
    /// The bytes of a simple or bulk string.
    pub fn as_bytes(&self) -> Option<&'a [u8]> {
        match *self {
            Value::Simple(bytes) | Value::Bulk(Some(bytes)) => Some(bytes),
            _ => None,
        }
    }
}

/// What [`decode`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decoded<'a> {
    /// A whole value, and how many bytes of the input it took.
    Complete(usize, Value<'a>),
    /// The input ends inside a value: call again with more bytes.
    Partial,
}

/// Why the input is not RESP2 we accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// A value began with a byte that is no RESP2 type.
    UnknownType(u8),
    /// A length or integer line is not a decimal number.
    BadNumber,
    /// A header line (or simple string) longer than 64 KiB.
    LineTooLong,
    /// A bulk string longer than [`Limits::max_bulk_len`].
    BulkTooLong,
    /// An array with more elements than [`Limits::max_array_len`].
    ArrayTooLong,
    /// Arrays nested deeper than [`Limits::max_depth`].
    TooDeep,
    /// A bulk string not followed by CRLF, or a bare CR or LF in a line.
    MissingCrlf,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::UnknownType(byte) => write!(f, "unknown resp type byte 0x{byte:02x}"),
            Error::BadNumber => f.write_str("resp length or integer is not a number"),
            Error::LineTooLong => f.write_str("resp line too long"),
            Error::BulkTooLong => f.write_str("resp bulk string over the size limit"),
            Error::ArrayTooLong => f.write_str("resp array over the element limit"),
            Error::TooDeep => f.write_str("resp arrays nested too deep"),
            Error::MissingCrlf => f.write_str("resp value not ended by crlf"),
        }
    }
}

impl std::error::Error for Error {}

/// Appends a command (an array of bulk strings) to `out`: `*N\r\n` then `$len\r\narg\r\n`
/// for each argument.
pub fn encode_command(out: &mut Vec<u8>, arguments: &[&[u8]]) {
    encode_array_header(out, arguments.len());
    for argument in arguments {
        encode_bulk_header(out, argument.len());
        out.extend_from_slice(argument);
        out.extend_from_slice(b"\r\n");
    }
}

/// Appends `*count\r\n`: an array of `count` values follows.
pub fn encode_array_header(out: &mut Vec<u8>, count: usize) {
    out.push(b'*');
    push_decimal(out, count);
    out.extend_from_slice(b"\r\n");
}

/// Appends `$len\r\n`: the caller writes `len` bytes and `\r\n` after it (so a bulk string
/// can be built in place, with no copy in between).
pub fn encode_bulk_header(out: &mut Vec<u8>, len: usize) {
    out.push(b'$');
    push_decimal(out, len);
    out.extend_from_slice(b"\r\n");
}

/// The length of [`encode_command`]'s output for these argument lengths.
pub fn encoded_len(argument_lens: &[usize]) -> usize {
    let header = 1 + decimal_len(argument_lens.len()) + 2;
    header
        + argument_lens
            .iter()
            .map(|&len| 1 + decimal_len(len) + 2 + len + 2)
            .sum::<usize>()
}

fn push_decimal(out: &mut Vec<u8>, value: usize) {
    let mut digits = [0u8; 20];
    let mut index = digits.len();
    let mut rest = value;
    loop {
        index -= 1;
        digits[index] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[index..]);
}

fn decimal_len(value: usize) -> usize {
    let mut len = 1;
    let mut rest = value / 10;
    while rest > 0 {
        len += 1;
        rest /= 10;
    }
    len
}

/// Decodes one value from the front of `input`.
pub fn decode(input: &[u8], limits: Limits) -> Result<Decoded<'_>, Error> {
    match decode_at(input, 0, limits, 0)? {
        Some((end, value)) => Ok(Decoded::Complete(end, value)),
        None => Ok(Decoded::Partial),
    }
}

/// Decodes the value starting at `start`; `Ok(None)` when the input ends inside it.
fn decode_at(
    input: &[u8],
    start: usize,
    limits: Limits,
    depth: usize,
) -> Result<Option<(usize, Value<'_>)>, Error> {
    let Some(&type_byte) = input.get(start) else {
        return Ok(None);
    };
    if !matches!(type_byte, b'+' | b'-' | b':' | b'$' | b'*') {
        return Err(Error::UnknownType(type_byte));
    }
    let Some((line, after_line)) = read_line(input, start + 1)? else {
        return Ok(None);
    };
    match type_byte {
        b'+' => Ok(Some((after_line, Value::Simple(line)))),
        b'-' => Ok(Some((after_line, Value::Error(line)))),
        b':' => Ok(Some((after_line, Value::Integer(parse_integer(line)?)))),
        b'$' => {
            let len = parse_integer(line)?;
            if len == -1 {
                return Ok(Some((after_line, Value::Bulk(None))));
            }
            let len = usize::try_from(len).map_err(|_| Error::BadNumber)?;
            if len > limits.max_bulk_len {
                return Err(Error::BulkTooLong);
            }
            let end = after_line + len;
            if input.len() < end + 2 {
                // Check what CRLF bytes there are, so a wrong one is found early.
                if input.len() > end && input[end] != b'\r' {
                    return Err(Error::MissingCrlf);
                }
                return Ok(None);
            }
            if &input[end..end + 2] != b"\r\n" {
                return Err(Error::MissingCrlf);
            }
            Ok(Some((end + 2, Value::Bulk(Some(&input[after_line..end])))))
        }
        _ => {
            let count = parse_integer(line)?;
            if count == -1 {
                return Ok(Some((after_line, Value::Array(None))));
            }
            let count = usize::try_from(count).map_err(|_| Error::BadNumber)?;
            if count > limits.max_array_len {
                return Err(Error::ArrayTooLong);
            }
            if depth + 1 > limits.max_depth {
                return Err(Error::TooDeep);
            }
            // Each element takes at least 3 bytes (`:0` is not shorter than `+\r\n`), so a
            // count far beyond the input is known to be partial before anything is allocated.
            let mut elements = Vec::with_capacity(count.min((input.len() - after_line) / 3));
            let mut position = after_line;
            for _ in 0..count {
                match decode_at(input, position, limits, depth + 1)? {
                    Some((end, value)) => {
                        elements.push(value);
                        position = end;
                    }
                    None => return Ok(None),
                }
            }
            Ok(Some((position, Value::Array(Some(elements)))))
        }
    }
}

/// The line starting at `start` up to CRLF, and the index after the CRLF.
fn read_line(input: &[u8], start: usize) -> Result<Option<(&[u8], usize)>, Error> {
    let rest = &input[start.min(input.len())..];
    let window = &rest[..rest.len().min(MAX_LINE_LEN + 1)];
    match window
        .iter()
        .position(|&byte| byte == b'\r' || byte == b'\n')
    {
        Some(index) => {
            if window[index] == b'\n' {
                return Err(Error::MissingCrlf);
            }
            match rest.get(index + 1) {
                None => Ok(None),
                Some(b'\n') => Ok(Some((&rest[..index], start + index + 2))),
                Some(_) => Err(Error::MissingCrlf),
            }
        }
        None if window.len() > MAX_LINE_LEN => Err(Error::LineTooLong),
        None => Ok(None),
    }
}

fn parse_integer(line: &[u8]) -> Result<i64, Error> {
    let (negative, digits) = match line.split_first() {
        Some((b'-', digits)) => (true, digits),
        _ => (false, line),
    };
    if digits.is_empty() || digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
        return Err(Error::BadNumber);
    }
    let mut value: i64 = 0;
    for &digit in digits {
        value = value
            .checked_mul(10)
            .and_then(|value| value.checked_add(i64::from(digit - b'0')))
            .ok_or(Error::BadNumber)?;
    }
    Ok(if negative { -value } else { value })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn complete(input: &[u8]) -> (usize, Value<'_>) {
        match decode(input, Limits::default()) {
            Ok(Decoded::Complete(used, value)) => (used, value),
            other => panic!("{:?}: {other:?}", String::from_utf8_lossy(input)),
        }
    }

    #[test]
    fn commands_are_arrays_of_bulk_strings() {
        let mut out = Vec::new();
        encode_command(&mut out, &[b"PUBLISH", b"room:/", b"hi"]);
        assert_eq!(out, b"*3\r\n$7\r\nPUBLISH\r\n$6\r\nroom:/\r\n$2\r\nhi\r\n");
        assert_eq!(encoded_len(&[7, 6, 2]), out.len());
        let mut out = Vec::new();
        let long = vec![b'x'; 12345];
        encode_command(&mut out, &[b"", &long]);
        assert_eq!(encoded_len(&[0, 12345]), out.len());
        assert!(out.starts_with(b"*2\r\n$0\r\n\r\n$12345\r\n"));
    }

    #[test]
    fn an_encoded_command_decodes_to_its_arguments() {
        let mut out = Vec::new();
        encode_command(&mut out, &[b"SUBSCRIBE", b"a\r\nb", b""]);
        let (used, value) = complete(&out);
        assert_eq!(used, out.len());
        assert_eq!(
            value,
            Value::Array(Some(vec![
                Value::Bulk(Some(b"SUBSCRIBE")),
                Value::Bulk(Some(b"a\r\nb")),
                Value::Bulk(Some(b"")),
            ]))
        );
    }

    #[test]
    fn every_reply_type_decodes() {
        let table: [(&[u8], Value<'_>); 9] = [
            (b"+OK\r\n", Value::Simple(b"OK")),
            (b"-ERR bad\r\n", Value::Error(b"ERR bad")),
            (b":0\r\n", Value::Integer(0)),
            (b":-42\r\n", Value::Integer(-42)),
            (b"$-1\r\n", Value::Bulk(None)),
            (b"$0\r\n\r\n", Value::Bulk(Some(b""))),
            (b"*-1\r\n", Value::Array(None)),
            (b"*0\r\n", Value::Array(Some(vec![]))),
            (
                b"*3\r\n$9\r\nsubscribe\r\n$1\r\nr\r\n:1\r\n",
                Value::Array(Some(vec![
                    Value::Bulk(Some(b"subscribe")),
                    Value::Bulk(Some(b"r")),
                    Value::Integer(1),
                ])),
            ),
        ];
        for (input, expected) in table {
            assert_eq!(complete(input), (input.len(), expected));
        }
    }

    #[test]
    fn a_value_followed_by_more_bytes_takes_only_its_own() {
        let (used, value) = complete(b":1\r\n+OK\r\n");
        assert_eq!((used, value), (4, Value::Integer(1)));
    }

    #[test]
    fn every_cut_prefix_is_partial_and_consumes_nothing() {
        let inputs: [&[u8]; 6] = [
            b"+OK\r\n",
            b"-ERR wrong number of arguments\r\n",
            b":123456\r\n",
            b"$12\r\nhello\r\nworld\r\n",
            b"*3\r\n$7\r\nmessage\r\n$6\r\nroom:/\r\n$5\r\nhello\r\n",
            b"*2\r\n*1\r\n:1\r\n$-1\r\n",
        ];
        for input in inputs {
            for cut in 0..input.len() {
                assert_eq!(
                    decode(&input[..cut], Limits::default()),
                    Ok(Decoded::Partial),
                    "{:?} cut at {cut}",
                    String::from_utf8_lossy(input)
                );
            }
            assert_eq!(complete(input).0, input.len());
        }
    }

    #[test]
    fn broken_input_is_an_error_not_a_panic() {
        let table: [(&[u8], Error); 9] = [
            (b"?x\r\n", Error::UnknownType(b'?')),
            (b":12a\r\n", Error::BadNumber),
            (b":\r\n", Error::BadNumber),
            (b"$-2\r\n", Error::BadNumber),
            (b":99999999999999999999\r\n", Error::BadNumber),
            (b"$3\r\nabcd\r\n", Error::MissingCrlf),
            (b"$3\r\nabc\rx", Error::MissingCrlf),
            (b"+OK\n", Error::MissingCrlf),
            (b"+O\rK\r\n", Error::MissingCrlf),
        ];
        for (input, expected) in table {
            assert_eq!(
                decode(input, Limits::default()),
                Err(expected),
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn sizes_past_the_limits_are_refused_before_the_bytes_arrive() {
        let limits = Limits {
            max_bulk_len: 10,
            max_array_len: 2,
            max_depth: 2,
        };
        assert_eq!(decode(b"$11\r\n", limits), Err(Error::BulkTooLong));
        assert_eq!(
            decode(b"$9223372036854775807\r\n", limits),
            Err(Error::BulkTooLong)
        );
        assert_eq!(decode(b"*3\r\n", limits), Err(Error::ArrayTooLong));
        assert_eq!(decode(b"*1\r\n*1\r\n*1\r\n", limits), Err(Error::TooDeep));
        assert!(matches!(
            decode(b"*1\r\n*1\r\n:1\r\n", limits),
            Ok(Decoded::Complete(..))
        ));
        let endless = vec![b'a'; MAX_LINE_LEN + 10];
        let mut line = vec![b'+'];
        line.extend_from_slice(&endless);
        assert_eq!(decode(&line, limits), Err(Error::LineTooLong));
    }

    #[test]
    fn a_huge_array_count_allocates_nothing_until_its_elements_arrive() {
        let limits = Limits {
            max_array_len: usize::MAX,
            ..Limits::default()
        };
        assert_eq!(
            decode(b"*9223372036854775807\r\n", limits),
            Ok(Decoded::Partial)
        );
    }
}
