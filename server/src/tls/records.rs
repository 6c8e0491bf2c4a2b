//! TLS 1.3 application traffic after the handshake, sealed and opened here (RFC 8446 section
//! 5) so that an idle connection keeps only its keys.
//!
//! rustls runs the handshake. When it is over, [`RecordLayer::new`] takes the traffic keys
//! from rustls's kernel-connection API (made for kTLS: the same split, with user space in the
//! kernel's place) and rustls's connection, its buffers and its handshake state are dropped.
//! What stays per connection: the sending key, expanded once (it seals every broadcast), the
//! receiving key as its bytes (expanded for each read: clients of a fan-out server speak
//! rarely), two IVs and sequence numbers, and rustls's [`KernelConnection`], which derives
//! the next keys for a KeyUpdate (RFC 8446 section 4.6.3). About 1.4 KB in all, against
//! 3.3 KB for rustls's connection.
//!
//! A record (section 5.2): a 5-byte header (`application_data`, `0x0303`, the length), then the
//! AEAD-sealed `TLSInnerPlaintext` (the content, its real content type, zero padding) and the
//! tag. The nonce is the IV XOR the record's sequence number (section 5.3). Records carry at
//! most 2^14 bytes of content.

use ring::aead::{Aad, Algorithm, LessSafeKey, Nonce, UnboundKey, NONCE_LEN};
use rustls::kernel::KernelConnection;
use rustls::server::ServerConnectionData;
use rustls::{ConnectionTrafficSecrets, ExtractedSecrets};
use zeroize::Zeroize;

/// The most content a record carries (RFC 8446 section 5.1).
const MAX_FRAGMENT: usize = 1 << 14;
/// The most a record's encrypted part may be (section 5.2): content, type, padding, tag.
const MAX_CIPHERTEXT: usize = MAX_FRAGMENT + 256;
const HEADER_LEN: usize = 5;
const TAG_LEN: usize = 16;

const CHANGE_CIPHER_SPEC: u8 = 20;
const ALERT: u8 = 21;
const HANDSHAKE: u8 = 22;
const APPLICATION_DATA: u8 = 23;
const KEY_UPDATE: u8 = 24;

/// Why the peer's records were refused, with the alert that tells it (RFC 8446 section 6.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum RecordError {
    /// A record that does not open with the key: forged, damaged or out of order.
    BadRecordMac,
    /// A record longer than 2^14 + 256 bytes, or whose plaintext is longer than 2^14 + 1.
    RecordOverflow,
    /// A record type or handshake message that has no place after the handshake.
    UnexpectedMessage(&'static str),
    /// A malformed alert or handshake message.
    DecodeError(&'static str),
    /// A KeyUpdate whose request field is neither 0 nor 1.
    IllegalParameter,
    /// The peer sent this fatal alert.
    PeerAlert(u8),
    /// The key could not be set up or renewed (rustls refused; should not happen).
    Internal,
}

impl RecordError {
    /// The alert description to send, if any (the peer's own alert needs no answer).
    pub(super) fn alert(self) -> Option<u8> {
        match self {
            RecordError::BadRecordMac => Some(20),
            RecordError::RecordOverflow => Some(22),
            RecordError::UnexpectedMessage(_) => Some(10),
            RecordError::DecodeError(_) => Some(50),
            RecordError::IllegalParameter => Some(47),
            RecordError::PeerAlert(_) => None,
            RecordError::Internal => Some(80),
        }
    }
}

impl std::fmt::Display for RecordError {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RecordError::BadRecordMac => {
                write!(formatter, "a record did not decrypt (bad_record_mac)")
            }
            RecordError::RecordOverflow => {
                write!(
                    formatter,
                    "a record longer than RFC 8446 allows (record_overflow)"
                )
            }
            RecordError::UnexpectedMessage(what) => {
                write!(formatter, "{what} after the handshake (unexpected_message)")
            }
            RecordError::DecodeError(what) => write!(formatter, "{what} (decode_error)"),
            RecordError::IllegalParameter => {
                write!(
                    formatter,
                    "a KeyUpdate with a request other than 0 or 1 (illegal_parameter)"
                )
            }
            RecordError::PeerAlert(description) => {
                write!(formatter, "the peer sent fatal alert {description}")
            }
            RecordError::Internal => write!(formatter, "the traffic keys could not be set up"),
        }
    }
}

impl std::error::Error for RecordError {}

/// What [`RecordLayer::open`] found.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Opened {
    /// Bytes of the input used up: whole records. The rest is a record still arriving.
    pub(super) consumed: usize,
    /// The peer sent close_notify: it sends nothing more, and what came after it is ignored.
    pub(super) peer_closed: bool,
}

/// One connection's TLS 1.3 traffic keys and sequence numbers.
pub(super) struct RecordLayer {
    /// Derives the next keys when either side updates them.
    kernel: KernelConnection<ServerConnectionData>,
    algorithm: &'static Algorithm,
    sealing_key: LessSafeKey,
    sealing_iv: [u8; NONCE_LEN],
    sealing_sequence: u64,
    /// Records sealed with one key before it must be renewed (the suite's confidentiality
    /// limit, RFC 8446 section 5.5).
    sealing_limit: u64,
    opening_key: KeyBytes,
    opening_iv: [u8; NONCE_LEN],
    opening_sequence: u64,
    /// The peer asked for our KeyUpdate: it goes out before our next application data
    /// (section 4.6.3), once however often the peer asked.
    key_update_requested: bool,
    /// Records without application data since the last one that had some: KeyUpdates, empty
    /// records, user_canceled warnings. Bounded, as rustls bounds them, so that a peer cannot
    /// keep the server busy with records that carry nothing.
    records_without_data: u8,
    /// Our close_notify went out: nothing follows it (section 6.1).
    closed: bool,
}

/// Records carrying nothing (see [`RecordLayer::records_without_data`]) accepted in a row.
const MAX_RECORDS_WITHOUT_DATA: u8 = 32;

/// A key kept as bytes (at most 32), expanded when used.
struct KeyBytes {
    bytes: [u8; 32],
    length: u8,
}

impl RecordLayer {
    /// Takes over from rustls once its handshake is over (TLS 1.3 only). `None` when the
    /// suite's AEAD is not one this layer knows.
    pub(super) fn new(
        secrets: ExtractedSecrets,
        kernel: KernelConnection<ServerConnectionData>,
    ) -> Option<Self> {
        let sealing_limit = kernel
            .negotiated_cipher_suite()
            .tls13()?
            .common
            .confidentiality_limit;
        let (sealing_sequence, sealing) = secrets.tx;
        let (opening_sequence, opening) = secrets.rx;
        let (algorithm, sealing_key, sealing_iv) = parts(&sealing)?;
        let (_, opening_key, opening_iv) = parts(&opening)?;
        Some(RecordLayer {
            kernel,
            algorithm,
            sealing_key: expand(algorithm, sealing_key)?,
            sealing_iv,
            sealing_sequence,
            sealing_limit,
            opening_key: KeyBytes::new(opening_key)?,
            opening_iv,
            opening_sequence,
            key_update_requested: false,
            records_without_data: 0,
            closed: false,
        })
    }

    /// Seals `plaintext` as application data into records of up to 2^14 bytes, appended to
    /// `out`; renews the sending key first when it reached its limit or the peer asked.
    pub(super) fn seal(&mut self, plaintext: &[u8], out: &mut Vec<u8>) -> Result<(), RecordError> {
        if self.closed {
            return Err(RecordError::Internal);
        }
        for fragment in plaintext.chunks(MAX_FRAGMENT) {
            if self.key_update_requested || self.sealing_sequence >= self.sealing_limit {
                self.key_update_requested = false;
                self.update_sealing_key(out)?;
            }
            self.seal_record(APPLICATION_DATA, fragment, out)?;
        }
        Ok(())
    }

    /// Appends a close_notify alert to `out` (section 6.1).
    pub(super) fn seal_close_notify(&mut self, out: &mut Vec<u8>) -> Result<(), RecordError> {
        self.seal_last_alert([1, 0], out)
    }

    /// Appends a fatal alert to `out` (section 6.2).
    pub(super) fn seal_alert(
        &mut self,
        description: u8,
        out: &mut Vec<u8>,
    ) -> Result<(), RecordError> {
        self.seal_last_alert([2, description], out)
    }

    /// Seals the alert (level, description) that ends our side; nothing is sealed after it.
    fn seal_last_alert(&mut self, alert: [u8; 2], out: &mut Vec<u8>) -> Result<(), RecordError> {
        if self.closed {
            return Ok(());
        }
        self.closed = true;
        self.seal_record(ALERT, &alert, out)
    }

    /// Opens the whole records at the start of `received` (in place), appending application
    /// data to `plaintext`. A KeyUpdate renews the receiving key; when the peer asks for ours,
    /// it goes out before our next application data (section 4.6.3).
    pub(super) fn open(
        &mut self,
        received: &mut [u8],
        plaintext: &mut Vec<u8>,
    ) -> Result<Opened, RecordError> {
        let mut consumed = 0;
        // Expanded at the first record of this read, again after a KeyUpdate.
        let mut opening_key: Option<LessSafeKey> = None;
        loop {
            let rest = &mut received[consumed..];
            if rest.len() < HEADER_LEN {
                break;
            }
            let length = usize::from(u16::from_be_bytes([rest[3], rest[4]]));
            if length > MAX_CIPHERTEXT {
                return Err(RecordError::RecordOverflow);
            }
            match rest[0] {
                APPLICATION_DATA => {}
                CHANGE_CIPHER_SPEC => {
                    return Err(RecordError::UnexpectedMessage(
                        "a change_cipher_spec record",
                    ))
                }
                _ => return Err(RecordError::UnexpectedMessage("an unprotected record")),
            }
            if rest.len() < HEADER_LEN + length {
                break;
            }
            consumed += HEADER_LEN + length;
            let (header, sealed) = rest[..HEADER_LEN + length].split_at_mut(HEADER_LEN);
            if opening_key.is_none() {
                opening_key = Some(
                    expand(self.algorithm, self.opening_key.as_slice())
                        .ok_or(RecordError::Internal)?,
                );
            }
            let key = opening_key.as_ref().ok_or(RecordError::Internal)?;
            let nonce = nonce(&self.opening_iv, self.opening_sequence);
            let inner = key
                .open_in_place(nonce, Aad::from(&*header), sealed)
                .map_err(|_| RecordError::BadRecordMac)?;
            self.opening_sequence += 1;
            // TLSInnerPlaintext: the content, its type, then zeros, 2^14 + 1 bytes at most
            // (section 5.4).
            if inner.len() > MAX_FRAGMENT + 1 {
                return Err(RecordError::RecordOverflow);
            }
            let Some(type_at) = inner.iter().rposition(|&byte| byte != 0) else {
                return Err(RecordError::UnexpectedMessage(
                    "a record without a content type",
                ));
            };
            let (content, content_type) = (&inner[..type_at], inner[type_at]);
            if content_type == APPLICATION_DATA && !content.is_empty() {
                self.records_without_data = 0;
            } else {
                self.records_without_data += 1;
                if self.records_without_data > MAX_RECORDS_WITHOUT_DATA {
                    return Err(RecordError::UnexpectedMessage(
                        "more than 32 records in a row without application data",
                    ));
                }
            }
            match content_type {
                APPLICATION_DATA => plaintext.extend_from_slice(content),
                ALERT => match content {
                    [_, 0] => {
                        return Ok(Opened {
                            consumed: received.len(),
                            peer_closed: true,
                        })
                    }
                    // user_canceled is a warning that precedes close_notify (section 6.1).
                    [_, 90] => {}
                    [_, description] => return Err(RecordError::PeerAlert(*description)),
                    _ => return Err(RecordError::DecodeError("an alert that is not 2 bytes")),
                },
                HANDSHAKE => {
                    let request = key_update_request(content)?;
                    let (sequence, secrets) = self
                        .kernel
                        .update_rx_secret()
                        .map_err(|_| RecordError::Internal)?;
                    let (_, key, iv) = parts(&secrets).ok_or(RecordError::Internal)?;
                    self.opening_key = KeyBytes::new(key).ok_or(RecordError::Internal)?;
                    self.opening_iv = iv;
                    self.opening_sequence = sequence;
                    opening_key = None;
                    if request == 1 && !self.closed {
                        self.key_update_requested = true;
                    }
                }
                _ => {
                    return Err(RecordError::UnexpectedMessage(
                        "a record of an unknown type",
                    ))
                }
            }
        }
        Ok(Opened {
            consumed,
            peer_closed: false,
        })
    }

    /// Lowers the sending key's limit, for tests of its renewal.
    #[cfg(test)]
    pub(super) fn set_sealing_limit(&mut self, limit: u64) {
        self.sealing_limit = limit;
    }

    /// Records sealed with the current sending key.
    #[cfg(test)]
    pub(super) fn sealing_sequence(&self) -> u64 {
        self.sealing_sequence
    }

    /// Sends a KeyUpdate (not asking the peer to update) under the current key, then switches
    /// to the next one.
    fn update_sealing_key(&mut self, out: &mut Vec<u8>) -> Result<(), RecordError> {
        let (sequence, secrets) = self
            .kernel
            .update_tx_secret()
            .map_err(|_| RecordError::Internal)?;
        let (_, key, iv) = parts(&secrets).ok_or(RecordError::Internal)?;
        let key = expand(self.algorithm, key).ok_or(RecordError::Internal)?;
        self.seal_record(HANDSHAKE, &[KEY_UPDATE, 0, 0, 1, 0], out)?;
        self.sealing_key = key;
        self.sealing_iv = iv;
        self.sealing_sequence = sequence;
        Ok(())
    }

    fn seal_record(
        &mut self,
        content_type: u8,
        content: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), RecordError> {
        let start = out.len();
        let length = content.len() + 1 + TAG_LEN;
        let [high, low] = (length as u16).to_be_bytes();
        let header = [APPLICATION_DATA, 3, 3, high, low];
        out.extend_from_slice(&header);
        out.extend_from_slice(content);
        out.push(content_type);
        let nonce = nonce(&self.sealing_iv, self.sealing_sequence);
        let sealed = self.sealing_key.seal_in_place_separate_tag(
            nonce,
            Aad::from(header),
            &mut out[start + HEADER_LEN..],
        );
        let Ok(tag) = sealed else {
            // Never leave unsealed bytes where they could be sent.
            out.truncate(start);
            return Err(RecordError::Internal);
        };
        out.extend_from_slice(tag.as_ref());
        self.sealing_sequence += 1;
        Ok(())
    }
}

impl Drop for KeyBytes {
    fn drop(&mut self) {
        self.bytes.zeroize();
    }
}

impl KeyBytes {
    fn new(key: &[u8]) -> Option<Self> {
        let mut bytes = [0; 32];
        bytes.get_mut(..key.len())?.copy_from_slice(key);
        Some(KeyBytes {
            bytes,
            length: key.len() as u8,
        })
    }

    fn as_slice(&self) -> &[u8] {
        &self.bytes[..usize::from(self.length)]
    }
}

/// The request field of a record holding exactly one KeyUpdate (section 4.6.3); any other
/// handshake message has no place after the handshake of a server without client
/// certificates or tickets to take.
fn key_update_request(content: &[u8]) -> Result<u8, RecordError> {
    match content {
        [KEY_UPDATE, 0, 0, 1, request] => match request {
            0 | 1 => Ok(*request),
            _ => Err(RecordError::IllegalParameter),
        },
        [KEY_UPDATE, 0, 0, 1, _, ..] => Err(RecordError::UnexpectedMessage(
            "more in a KeyUpdate's record after it (the key changes there)",
        )),
        [KEY_UPDATE, 0, 0, 1] | [KEY_UPDATE] | [KEY_UPDATE, _] | [KEY_UPDATE, _, _] => Err(
            RecordError::UnexpectedMessage("a KeyUpdate split across records (not supported)"),
        ),
        [KEY_UPDATE, ..] => Err(RecordError::DecodeError("a KeyUpdate of the wrong length")),
        _ => Err(RecordError::UnexpectedMessage(
            "a handshake message other than KeyUpdate",
        )),
    }
}

/// The AEAD, key and IV of one direction's secrets.
fn parts(
    secrets: &ConnectionTrafficSecrets,
) -> Option<(&'static Algorithm, &[u8], [u8; NONCE_LEN])> {
    let (algorithm, key, iv) = match secrets {
        ConnectionTrafficSecrets::Aes128Gcm { key, iv } => (&ring::aead::AES_128_GCM, key, iv),
        ConnectionTrafficSecrets::Aes256Gcm { key, iv } => (&ring::aead::AES_256_GCM, key, iv),
        ConnectionTrafficSecrets::Chacha20Poly1305 { key, iv } => {
            (&ring::aead::CHACHA20_POLY1305, key, iv)
        }
        _ => return None,
    };
    Some((algorithm, key.as_ref(), iv.as_ref().try_into().ok()?))
}

fn expand(algorithm: &'static Algorithm, key: &[u8]) -> Option<LessSafeKey> {
    Some(LessSafeKey::new(UnboundKey::new(algorithm, key).ok()?))
}

/// The per-record nonce: the IV XOR the sequence number, right-aligned (section 5.3).
fn nonce(iv: &[u8; NONCE_LEN], sequence: u64) -> Nonce {
    let mut nonce = *iv;
    for (byte, sequence_byte) in nonce[NONCE_LEN - 8..]
        .iter_mut()
        .zip(sequence.to_be_bytes())
    {
        *byte ^= sequence_byte;
    }
    Nonce::assume_unique_for_key(nonce)
}
