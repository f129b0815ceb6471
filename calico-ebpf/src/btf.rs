//! Just enough of the kernel's BTF (`/sys/kernel/btf/vmlinux`) to call the conntrack
//! kfuncs from generated code: a function's type id by name, and a struct member's byte
//! offset. The format is the kernel's `include/uapi/linux/btf.h`: a header, a type
//! section of variable-length records (ids from 1, in order), a string section.

use std::path::Path;

/// Why the kernel's BTF cannot give what the conntrack lookup needs. Each names what is
/// missing, so that a kernel without it is refused with one clear message.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BtfError {
    /// The file could not be read (a kernel without `CONFIG_DEBUG_INFO_BTF`).
    #[error("cannot read kernel BTF {path}: {reason} (the kernel needs CONFIG_DEBUG_INFO_BTF)")]
    Unreadable {
        /// The path.
        path: String,
        /// The I/O error.
        reason: String,
    },
    /// The data is not BTF, or is cut short.
    #[error("kernel BTF is malformed: {0}")]
    Malformed(&'static str),
    /// A function is not in the kernel's BTF.
    #[error("kernel BTF has no function {0} (a kernel without it, or nf_conntrack built as a module, whose BTF is not read yet)")]
    NoFunction(String),
    /// A struct, or a member of it, is not in the kernel's BTF.
    #[error("kernel BTF has no member {member} in struct {strukt}")]
    NoMember {
        /// The struct.
        strukt: String,
        /// The member.
        member: String,
    },
}

const KIND_STRUCT: u32 = 4;
const KIND_FUNC: u32 = 12;

/// One type record: its kind, name, and (for structs) where its members are.
struct TypeRec {
    kind: u32,
    name_off: u32,
    kind_flag: bool,
    vlen: usize,
    /// Byte position of the first member record (structs).
    members: usize,
}

/// Parsed kernel BTF.
pub struct Btf {
    data: Vec<u8>,
    strings: usize,
    strings_len: usize,
    /// Type `id` is `types[id - 1]`.
    types: Vec<TypeRec>,
}

fn u32_at(d: &[u8], at: usize) -> Result<u32, BtfError> {
    d.get(at..at + 4)
        .map(|b| u32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
        .ok_or(BtfError::Malformed("truncated"))
}

impl Btf {
    /// Reads the running kernel's BTF.
    pub fn vmlinux() -> Result<Btf, BtfError> {
        Btf::read(Path::new("/sys/kernel/btf/vmlinux"))
    }

    /// Reads BTF from `path`.
    pub fn read(path: &Path) -> Result<Btf, BtfError> {
        let data = std::fs::read(path).map_err(|e| BtfError::Unreadable {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        Btf::parse(data)
    }

    /// Parses BTF in the host's byte order (as the kernel exports it).
    pub fn parse(data: Vec<u8>) -> Result<Btf, BtfError> {
        if data.len() < 24 || u16::from_ne_bytes([data[0], data[1]]) != 0xeb9f {
            return Err(BtfError::Malformed("no BTF magic"));
        }
        let hdr_len = u32_at(&data, 4)? as usize;
        let type_off = u32_at(&data, 8)? as usize;
        let type_len = u32_at(&data, 12)? as usize;
        let str_off = u32_at(&data, 16)? as usize;
        let str_len = u32_at(&data, 20)? as usize;
        let start = hdr_len + type_off;
        let end = start + type_len;
        if end > data.len() || hdr_len + str_off + str_len > data.len() {
            return Err(BtfError::Malformed("sections beyond the data"));
        }
        let mut types = Vec::new();
        let mut at = start;
        while at < end {
            let name_off = u32_at(&data, at)?;
            let info = u32_at(&data, at + 4)?;
            let vlen = (info & 0xffff) as usize;
            let kind = (info >> 24) & 0x1f;
            let trailing = match kind {
                1 | 14 | 17 => 4,     // int, var, decl_tag
                3 => 12,              // array
                4 | 5 => 12 * vlen,   // struct, union
                6 | 13 => 8 * vlen,   // enum, func_proto
                15 | 19 => 12 * vlen, // datasec, enum64
                2 | 7..=12 | 16 | 18 => 0,
                _ => return Err(BtfError::Malformed("unknown type kind")),
            };
            types.push(TypeRec {
                kind,
                name_off,
                kind_flag: info >> 31 == 1,
                vlen,
                members: at + 12,
            });
            at += 12 + trailing;
        }
        Ok(Btf {
            data,
            strings: hdr_len + str_off,
            strings_len: str_len,
            types,
        })
    }

    fn name(&self, off: u32) -> &[u8] {
        let off = off as usize;
        if off >= self.strings_len {
            return b"";
        }
        let s = &self.data[self.strings + off..self.strings + self.strings_len];
        let end = s.iter().position(|&b| b == 0).unwrap_or(s.len());
        &s[..end]
    }

    /// The type id of function `name`.
    pub fn function(&self, name: &str) -> Result<u32, BtfError> {
        self.types
            .iter()
            .position(|t| t.kind == KIND_FUNC && self.name(t.name_off) == name.as_bytes())
            .map(|i| i as u32 + 1)
            .ok_or_else(|| BtfError::NoFunction(name.into()))
    }

    /// The byte offset of `member` in struct `strukt` (a direct member, not a bitfield).
    pub fn member_offset(&self, strukt: &str, member: &str) -> Result<u32, BtfError> {
        let missing = || BtfError::NoMember {
            strukt: strukt.into(),
            member: member.into(),
        };
        let t = self
            .types
            .iter()
            .find(|t| t.kind == KIND_STRUCT && self.name(t.name_off) == strukt.as_bytes())
            .ok_or_else(missing)?;
        for m in 0..t.vlen {
            let at = t.members + 12 * m;
            if self.name(u32_at(&self.data, at)?) == member.as_bytes() {
                let raw = u32_at(&self.data, at + 8)?;
                let bits = if t.kind_flag { raw & 0x00ff_ffff } else { raw };
                if bits % 8 != 0 {
                    return Err(missing());
                }
                return Ok(bits / 8);
            }
        }
        Err(missing())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A BTF blob: an int, `struct nf_conn { int pad; unsigned long status; }` (status at
    /// byte 8), a function prototype and `FUNC bpf_skb_ct_lookup`.
    fn blob() -> Vec<u8> {
        let strings = b"\0int\0nf_conn\0pad\0status\0bpf_skb_ct_lookup\0";
        let name = |s: &str| {
            let pat = format!("\0{s}\0");
            strings
                .windows(pat.len())
                .position(|w| w == pat.as_bytes())
                .unwrap() as u32
                + 1
        };
        let mut types: Vec<u32> = Vec::new();
        // 1: int (4 bytes, 32 bits).
        types.extend([name("int"), 1 << 24, 4, 32]);
        // 2: struct nf_conn, 2 members, 16 bytes.
        types.extend([name("nf_conn"), (4 << 24) | 2, 16]);
        types.extend([name("pad"), 1, 0]);
        types.extend([name("status"), 1, 64]);
        // 3: func_proto with no parameters, returning int.
        types.extend([0, 13 << 24, 1]);
        // 4: func bpf_skb_ct_lookup of type 3.
        types.extend([name("bpf_skb_ct_lookup"), 12 << 24, 3]);
        let types: Vec<u8> = types.iter().flat_map(|w| w.to_ne_bytes()).collect();
        let mut b = Vec::new();
        b.extend(0xeb9fu16.to_ne_bytes());
        b.extend([1, 0]);
        for w in [
            24u32,
            0,
            types.len() as u32,
            types.len() as u32,
            strings.len() as u32,
        ] {
            b.extend(w.to_ne_bytes());
        }
        b.extend(types);
        b.extend(strings);
        b
    }

    #[test]
    fn functions_and_member_offsets_are_found() {
        let btf = Btf::parse(blob()).unwrap();
        assert_eq!(btf.function("bpf_skb_ct_lookup"), Ok(4));
        assert_eq!(btf.member_offset("nf_conn", "status"), Ok(8));
        assert_eq!(btf.member_offset("nf_conn", "pad"), Ok(0));
    }

    #[test]
    fn what_is_missing_is_named() {
        let btf = Btf::parse(blob()).unwrap();
        assert_eq!(
            btf.function("bpf_ct_release"),
            Err(BtfError::NoFunction("bpf_ct_release".into()))
        );
        let e = btf.member_offset("nf_conn", "master").unwrap_err();
        assert!(e.to_string().contains("master"), "{e}");
    }

    #[test]
    fn malformed_data_is_an_error_not_a_panic() {
        assert!(Btf::parse(vec![0; 8]).is_err());
        let mut cut = blob();
        cut.truncate(40);
        assert!(Btf::parse(cut).is_err());
        let mut bad_kind = blob();
        bad_kind[24 + 7] = 31 & 0x1f;
        assert!(Btf::parse(bad_kind).is_err());
    }

    #[test]
    fn the_running_kernel_has_the_conntrack_kfuncs_or_says_what_is_missing() {
        match Btf::vmlinux() {
            Ok(btf) => match crate::generate::CtKfuncs::from_btf(&btf) {
                Ok(k) => assert!(k.lookup > 0 && k.release > 0 && k.status > 0),
                Err(e) => eprintln!("this kernel cannot run the conntrack lookup: {e}"),
            },
            Err(e) => eprintln!("no kernel BTF here: {e}"),
        }
    }
}
