//! AS_PATH and AS4_PATH (RFC 4271 §4.3, RFC 6793): segments of 2- or 4-byte AS numbers, and
//! the merge of the two a 2-byte speaker sends.

use super::super::cursor::Cursor;
use super::super::open::AS_TRANS;

/// The kind of an AS_PATH segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SegmentKind {
    /// 1: unordered set (counts as one AS).
    Set,
    /// 2: ordered sequence.
    Sequence,
    /// 3: confederation sequence (counts as zero).
    ConfedSequence,
    /// 4: confederation set (counts as zero).
    ConfedSet,
}

impl SegmentKind {
    fn from_u8(v: u8) -> Option<SegmentKind> {
        Some(match v {
            1 => SegmentKind::Set,
            2 => SegmentKind::Sequence,
            3 => SegmentKind::ConfedSequence,
            4 => SegmentKind::ConfedSet,
            _ => return None,
        })
    }

    fn to_u8(self) -> u8 {
        match self {
            SegmentKind::Set => 1,
            SegmentKind::Sequence => 2,
            SegmentKind::ConfedSequence => 3,
            SegmentKind::ConfedSet => 4,
        }
    }

    pub(super) fn is_confed(self) -> bool {
        matches!(self, SegmentKind::ConfedSequence | SegmentKind::ConfedSet)
    }
}

/// One AS_PATH segment (1 to 255 AS numbers).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Segment {
    /// Set or sequence.
    pub kind: SegmentKind,
    /// The AS numbers (4-byte, whatever the session encodes).
    pub asns: Vec<u32>,
}

/// An AS_PATH with 4-byte AS numbers (AS4_PATH already merged in).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct AsPath {
    /// The segments, leftmost first.
    pub segments: Vec<Segment>,
}

impl AsPath {
    /// A path of one sequence.
    pub fn sequence(asns: Vec<u32>) -> AsPath {
        if asns.is_empty() {
            return AsPath::default();
        }
        AsPath {
            segments: vec![Segment {
                kind: SegmentKind::Sequence,
                asns,
            }],
        }
    }

    /// Path length for the decision process: a set counts 1, confederation segments 0
    /// (RFC 4271 §9.1.2.2, RFC 5065).
    pub fn length(&self) -> usize {
        self.segments
            .iter()
            .map(|s| match s.kind {
                SegmentKind::Sequence => s.asns.len(),
                SegmentKind::Set => 1,
                _ => 0,
            })
            .sum()
    }

    /// The neighbouring AS: the first AS of a leading sequence.
    pub fn first_as(&self) -> Option<u32> {
        self.segments
            .iter()
            .find(|s| !s.kind.is_confed())
            .filter(|s| s.kind == SegmentKind::Sequence)
            .and_then(|s| s.asns.first().copied())
    }

    /// How many times `asn` appears in the path (in sequences and sets alike).
    pub fn occurrences(&self, asn: u32) -> usize {
        self.segments
            .iter()
            .map(|s| s.asns.iter().filter(|a| **a == asn).count())
            .sum()
    }

    /// Whether `asn` appears anywhere in the path (loop detection).
    pub fn contains(&self, asn: u32) -> bool {
        self.segments.iter().any(|s| s.asns.contains(&asn))
    }

    /// The path with `asn` prepended to its leading sequence.
    pub fn prepended(&self, asn: u32) -> AsPath {
        let mut segments = self.segments.clone();
        match segments.first_mut() {
            Some(s) if s.kind == SegmentKind::Sequence && s.asns.len() < 255 => {
                s.asns.insert(0, asn)
            }
            _ => segments.insert(
                0,
                Segment {
                    kind: SegmentKind::Sequence,
                    asns: vec![asn],
                },
            ),
        }
        AsPath { segments }
    }
}

/// Reads one AS number, 4 or 2 bytes wide.
fn read_asn(c: &mut Cursor, four: bool) -> Option<u32> {
    if four {
        c.u32()
    } else {
        c.u16().map(u32::from)
    }
}

/// Decodes the segments of an AS_PATH (`four`: 4-byte AS numbers) or AS4_PATH value.
pub(super) fn parse_segments(value: &[u8], four: bool) -> Result<Vec<Segment>, String> {
    let as_size = if four { 4 } else { 2 };
    let mut c = Cursor::new(value);
    // Allocated to its length (kept as decoded in the RIB's interned attribute sets).
    let mut segments = Vec::with_capacity(count_segments(value, as_size));
    while !c.is_empty() {
        let (Some(kind), Some(count)) = (c.u8(), c.u8()) else {
            return Err("segment header truncated".into());
        };
        let kind = SegmentKind::from_u8(kind)
            .ok_or_else(|| format!("segment type {kind} is undefined"))?;
        if count == 0 {
            return Err("segment of zero AS numbers".into());
        }
        let bytes = c
            .take(usize::from(count) * as_size)
            .ok_or("segment overruns the attribute")?;
        let mut b = Cursor::new(bytes);
        let mut asns = Vec::with_capacity(usize::from(count));
        asns.extend(std::iter::from_fn(|| read_asn(&mut b, four)));
        segments.push(Segment { kind, asns });
    }
    Ok(segments)
}

/// How many segments `value` holds, by their headers (at most what fits; the parse that
/// follows finds any error).
fn count_segments(value: &[u8], as_size: usize) -> usize {
    let (mut n, mut at) = (0, 0);
    while let Some(&count) = value.get(at + 1) {
        n += 1;
        at += 2 + usize::from(count) * as_size;
    }
    n
}

/// Encodes segments with 4- or 2-byte AS numbers (a segment of more than 255 goes out as
/// several); returns whether a 2-byte encoding had to use AS_TRANS (so AS4_PATH is needed).
pub(super) fn encode_segments(path: &AsPath, four: bool, out: &mut Vec<u8>) -> bool {
    let mut lossy = false;
    for seg in &path.segments {
        for chunk in seg.asns.chunks(usize::from(u8::MAX)) {
            out.push(seg.kind.to_u8());
            out.push(u8::try_from(chunk.len()).unwrap_or(u8::MAX));
            for &asn in chunk {
                if four {
                    out.extend_from_slice(&asn.to_be_bytes());
                } else {
                    let short = u16::try_from(asn).unwrap_or(AS_TRANS);
                    lossy |= u32::from(short) != asn;
                    out.extend_from_slice(&short.to_be_bytes());
                }
            }
        }
    }
    lossy
}

/// Merges AS_PATH and AS4_PATH received from a 2-byte speaker (RFC 6793 §4.2.3).
pub(super) fn merge_as4(as_path: AsPath, as4: Vec<Segment>) -> AsPath {
    let as4 = AsPath { segments: as4 };
    let (n, m) = (as_path.length(), as4.length());
    if n < m {
        return as_path;
    }
    let mut need = n - m;
    let mut segments = Vec::new();
    for mut seg in as_path.segments {
        if need == 0 && !seg.kind.is_confed() {
            break;
        }
        match seg.kind {
            SegmentKind::Sequence if seg.asns.len() > need => {
                seg.asns.truncate(need);
                segments.push(seg);
                need = 0;
            }
            SegmentKind::Sequence => {
                need -= seg.asns.len();
                segments.push(seg);
            }
            SegmentKind::Set => {
                need -= 1;
                segments.push(seg);
            }
            _ => segments.push(seg),
        }
    }
    segments.retain(|s| !s.asns.is_empty());
    segments.extend(as4.segments);
    AsPath { segments }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoded_segments_have_no_spare_room() {
        // The RIB keeps decoded paths as they are: a list grown by pushes would hold room
        // for four segments where there is one.
        let mut bytes = Vec::new();
        let path = AsPath {
            segments: vec![
                Segment {
                    kind: SegmentKind::Sequence,
                    asns: vec![65000, 65001, 4_200_000_000],
                },
                Segment {
                    kind: SegmentKind::Set,
                    asns: vec![65002],
                },
            ],
        };
        encode_segments(&path, true, &mut bytes);
        let segments = parse_segments(&bytes, true).unwrap();
        assert_eq!(segments, path.segments);
        assert_eq!(segments.capacity(), 2);
        assert!(segments.iter().all(|s| s.asns.capacity() == s.asns.len()));
        // A header whose count overruns the value still counts as a segment; the parse
        // reports the error.
        assert_eq!(count_segments(&[2, 9, 0, 1], 4), 1);
        assert!(parse_segments(&[2, 9, 0, 1], true).is_err());
    }
}
