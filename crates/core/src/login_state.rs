//! The layout of a user's login-state file (`.USER.state`): two checksummed copies of the
//! record's `[usage]`, so that a login updates it in place with one `fdatasync`.
//!
//! Replacing a file atomically costs three flushes' worth of work (the new file's data and
//! inode, the rename, the directory), about 2.5× an in-place overwrite on ext4 (see
//! docs/benchmarks.md). An in-place overwrite is not atomic, though: a crash can leave part of
//! the new bytes and part of the old ones. So the file holds two slots of equal size, and a
//! write always goes to the slot that does **not** hold the newest state:
//!
//! ```text
//! slot 0 | magic "SSHSTAT1" | generation u64 | length u32 | slot size u32 | CRC-64 | payload |
//! slot 1 | (the same)                                                                 |
//! ```
//!
//! A reader takes the valid slot with the highest generation. A crash during a write can only
//! damage the slot being written, whose checksum then fails, and the other slot still holds the
//! state from before that login, which was not accepted (the engine answers only after the
//! `fdatasync` returned). So a crash never brings back a state older than the last login that
//! was answered. Slots are a multiple of 4 KiB and aligned to it, so a torn page of one slot
//! never touches the other. Both slots damaged at once cannot come from a crash (one slot is
//! written at a time) and is reported as an error, never read as "no state".
//!
//! The payload is the `[usage]` table as TOML, so the file stays inspectable
//! (`dd bs=4096 count=1 if=.alice.state | strings`).
//!
//! The checksum is CRC-64/XZ (the one xz puts on its blocks): it detects a torn or damaged
//! slot, which is all it is for. It is no defence against someone who can write the file, who
//! could as well write a valid slot, or the record itself; the store's owner and mode checks
//! are. Not SHA-256: the sha2 crate detects the CPU's SHA extensions on first use, with two
//! `cpuid` instructions, and a freshly loaded module pays that on every login; where a VM
//! traps `cpuid` (9 µs each measured here) that was 18 µs of a login.

/// The smallest slot, and the unit slots grow by: a page, and a file-system block on ext4.
pub(crate) const MIN_SLOT: usize = 4096;
const MAGIC: [u8; 8] = *b"SSHSTAT1";
/// Magic, generation, payload length, slot size, CRC-64.
const HEADER: usize = 8 + 8 + 4 + 4 + 8;
/// Where the checksum starts in the header; it covers the bytes before it and the payload.
const SUM_AT: usize = 24;

/// What one slot holds.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum SlotContent<'a> {
    /// Never written (all zero).
    Empty,
    /// Written, but not completely: a crash during the write, or damage.
    Damaged,
    /// A complete copy.
    Valid {
        /// Higher is newer.
        generation: u64,
        /// The `[usage]` TOML.
        payload: &'a [u8],
    },
}

/// Whether `len` bytes can be a login-state file, and if so the size of each of its slots.
pub(crate) fn slot_size_of(len: u64, max: u64) -> Option<usize> {
    if len > max || !len.is_multiple_of(2) {
        return None;
    }
    let slot = usize::try_from(len / 2).ok()?;
    (slot >= MIN_SLOT && slot.is_multiple_of(MIN_SLOT)).then_some(slot)
}

/// The slot size for a payload of `len` bytes: the smallest multiple of [`MIN_SLOT`] that
/// holds it, doubled so that a growing payload does not need a new file at every step.
pub(crate) fn slot_size_for(len: usize) -> usize {
    let need = (HEADER + len).div_ceil(MIN_SLOT) * MIN_SLOT;
    if need == MIN_SLOT {
        MIN_SLOT
    } else {
        need * 2
    }
}

/// Reads one slot of `slot_size` bytes.
pub(crate) fn decode(slot: &[u8]) -> SlotContent<'_> {
    if slot.iter().all(|b| *b == 0) {
        return SlotContent::Empty;
    }
    let (Some(header), Some(body)) = (slot.get(..HEADER), slot.get(HEADER..)) else {
        return SlotContent::Damaged;
    };
    let field = |at: usize, n: usize| &header[at..at + n];
    let u64_at = |at| u64::from_le_bytes(field(at, 8).try_into().unwrap_or_default());
    let u32_at = |at| u32::from_le_bytes(field(at, 4).try_into().unwrap_or_default());
    let generation = u64_at(8);
    let len = u32_at(16) as usize;
    let size = u32_at(20) as usize;
    if field(0, 8) != MAGIC || size != slot.len() || len > body.len() {
        return SlotContent::Damaged;
    }
    let payload = &body[..len];
    if checksum(&header[..SUM_AT], payload).to_le_bytes()[..] != header[SUM_AT..HEADER] {
        return SlotContent::Damaged;
    }
    SlotContent::Valid {
        generation,
        payload,
    }
}

/// The bytes to write at the start of a slot of `slot_size` bytes, or `None` if `payload`
/// does not fit (the caller then makes a bigger file).
pub(crate) fn encode(generation: u64, payload: &[u8], slot_size: usize) -> Option<Vec<u8>> {
    if HEADER + payload.len() > slot_size {
        return None;
    }
    let mut out = Vec::with_capacity(HEADER + payload.len());
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&generation.to_le_bytes());
    out.extend_from_slice(&u32::try_from(payload.len()).ok()?.to_le_bytes());
    out.extend_from_slice(&u32::try_from(slot_size).ok()?.to_le_bytes());
    let sum = checksum(&out, payload);
    out.extend_from_slice(&sum.to_le_bytes());
    out.extend_from_slice(payload);
    Some(out)
}

/// CRC-64/XZ of `header` then `payload`: reflected, polynomial 0x42F0E1EBA9EA3693, initial
/// value and final XOR all ones.
fn checksum(header: &[u8], payload: &[u8]) -> u64 {
    let crc = header.iter().chain(payload).fold(!0u64, |crc, byte| {
        CRC64_TABLE[usize::from(crc as u8 ^ byte)] ^ (crc >> 8)
    });
    !crc
}

/// The byte-at-a-time table of CRC-64/XZ, computed at compile time.
const CRC64_TABLE: [u64; 256] = {
    const REFLECTED_POLY: u64 = 0xC96C_5795_D787_0F42;
    let mut table = [0u64; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = i as u64;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ REFLECTED_POLY
            } else {
                crc >> 1
            };
            bit += 1;
        }
        table[i] = crc;
        i += 1;
    }
    table
};

/// The two slots of a file, read.
#[derive(Debug)]
pub(crate) struct Slots<'a> {
    /// The newest valid copy: its slot index, generation and payload.
    pub newest: Option<(usize, u64, &'a [u8])>,
    /// Both slots hold something and neither is a complete copy.
    pub both_damaged: bool,
}

/// Reads both slots of a whole file (`bytes.len()` is twice `slot_size`).
pub(crate) fn read(bytes: &[u8], slot_size: usize) -> Slots<'_> {
    let mut newest = None;
    let mut damaged = 0;
    for (index, slot) in bytes.chunks_exact(slot_size).take(2).enumerate() {
        match decode(slot) {
            SlotContent::Valid {
                generation,
                payload,
            } => {
                if newest.is_none_or(|(_, g, _)| generation > g) {
                    newest = Some((index, generation, payload));
                }
            }
            SlotContent::Damaged => damaged += 1,
            SlotContent::Empty => {}
        }
    }
    Slots {
        newest,
        both_damaged: damaged == 2,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file_with(slots: [Option<(u64, &[u8])>; 2]) -> Vec<u8> {
        let mut bytes = vec![0u8; 2 * MIN_SLOT];
        for (i, s) in slots.iter().enumerate() {
            if let Some((generation, payload)) = s {
                let enc = encode(*generation, payload, MIN_SLOT).unwrap();
                bytes[i * MIN_SLOT..i * MIN_SLOT + enc.len()].copy_from_slice(&enc);
            }
        }
        bytes
    }

    #[test]
    fn the_newest_valid_copy_wins_whichever_slot_it_is_in() {
        let bytes = file_with([Some((7, b"a = 7\n")), Some((8, b"a = 8\n"))]);
        let s = read(&bytes, MIN_SLOT);
        assert_eq!(s.newest, Some((1, 8, &b"a = 8\n"[..])));
        let bytes = file_with([Some((9, b"a = 9\n")), Some((8, b"a = 8\n"))]);
        assert_eq!(read(&bytes, MIN_SLOT).newest.map(|n| n.1), Some(9));
        let bytes = file_with([None, None]);
        let s = read(&bytes, MIN_SLOT);
        assert!(s.newest.is_none() && !s.both_damaged);
    }

    #[test]
    fn a_torn_write_of_any_length_falls_back_to_the_other_copy() {
        // The write of generation 9 into slot 0 (over generation 7) stops after `cut` bytes,
        // at any byte, as a crash could leave it (real disks tear at sectors; this is harsher).
        let old = file_with([Some((7, b"next_counter = 7\n")), Some((8, b"next = 8\n"))]);
        let new = encode(9, b"next_counter = 9\n", MIN_SLOT).unwrap();
        for cut in 0..new.len() {
            let mut bytes = old.clone();
            bytes[..cut].copy_from_slice(&new[..cut]);
            // Where the old bytes left over happen to equal the new ones, the write is whole.
            let whole = bytes[..new.len()] == new[..];
            let g = read(&bytes, MIN_SLOT).newest.map(|n| n.1);
            assert_eq!(g, Some(if whole { 9 } else { 8 }), "cut at {cut}");
        }
        let mut bytes = old.clone();
        bytes[..new.len()].copy_from_slice(&new);
        assert_eq!(read(&bytes, MIN_SLOT).newest.map(|n| n.1), Some(9));
    }

    #[test]
    fn any_flipped_bit_is_detected() {
        let good = file_with([Some((3, b"last_step = 42\n")), None]);
        let written = encode(3, b"last_step = 42\n", MIN_SLOT).unwrap().len();
        for byte in 0..written {
            for bit in 0..8 {
                let mut bytes = good.clone();
                bytes[byte] ^= 1 << bit;
                let s = read(&bytes, MIN_SLOT);
                assert!(s.newest.is_none(), "byte {byte} bit {bit}");
            }
        }
        // Both slots damaged is not "no state".
        let mut bytes = file_with([Some((3, b"x = 1\n")), Some((4, b"x = 2\n"))]);
        bytes[HEADER] ^= 1;
        bytes[MIN_SLOT + HEADER] ^= 1;
        assert!(read(&bytes, MIN_SLOT).both_damaged);
    }

    #[test]
    fn the_checksum_is_crc_64_xz() {
        // The check value of the CRC catalogue (reveng.sourceforge.io/crc-catalogue) for
        // "123456789", split anywhere between header and payload.
        for at in 0..=9 {
            let (a, b) = b"123456789".split_at(at);
            assert_eq!(checksum(a, b), 0x995D_C9BB_DF19_39FA);
        }
        assert_eq!(checksum(b"", b""), 0);
    }

    #[test]
    fn sizes() {
        assert_eq!(slot_size_for(0), MIN_SLOT);
        assert_eq!(slot_size_for(MIN_SLOT - HEADER), MIN_SLOT);
        assert_eq!(slot_size_for(MIN_SLOT - HEADER + 1), 4 * MIN_SLOT);
        assert!(encode(1, &vec![b'x'; MIN_SLOT], MIN_SLOT).is_none());
        assert_eq!(slot_size_of(2 * 4096, 1 << 20), Some(4096));
        assert_eq!(slot_size_of(2 * 8192, 1 << 20), Some(8192));
        for bad in [0, 4096, 3 * 4096, 2 * 4097, 2 << 20] {
            assert_eq!(slot_size_of(bad, 1 << 20), None, "{bad}");
        }
    }
}
