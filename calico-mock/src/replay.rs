//! Replaying a connection's first packet, logged by the kernel after the policy (flow logs,
//! [`calico_core::compile::first_packet_hook`]), through the rules that were programmed: the
//! flow-log references of the rules it matched name what allowed it
//! ([`calico_core::dataplane::ir::Statement::FlowRef`]).

use calico_core::dataplane::ir::{Hook, Ruleset};
use calico_core::eval::Packet;

use crate::interpreter::{interpret_marked, ConnState, PacketContext};

/// What the replay of one first packet found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Replay {
    /// Whether the rules allow the packet, as the kernel did when it logged it. `false`
    /// means the rules replayed are not those that judged it (they changed since, or the
    /// kernel's table drifted from them).
    pub allowed: bool,
    /// The references of the rules that allowed it, in the order met.
    pub refs: Vec<String>,
}

/// Replays `packet`, a connection's first packet logged after the policy at `hook`, that
/// came in through `iif` and goes out through `oif` (empty when none), through `ruleset`:
/// the prerouting hook first (for the marks it leaves) when the packet came in, then
/// `hook`.
pub fn replay_first_packet(
    ruleset: &Ruleset,
    hook: Hook,
    packet: &Packet,
    iif: &str,
    oif: &str,
) -> Replay {
    let ctx = PacketContext {
        packet,
        iif,
        oif,
        ct: ConnState::New,
    };
    let mut refs = Vec::new();
    let mut mark = 0;
    if matches!(hook, Hook::Forward | Hook::Input) {
        let arriving = PacketContext {
            oif: "",
            ..ctx.clone()
        };
        let pre = interpret_marked(ruleset, Hook::Prerouting, &arriving, 0);
        if !pre.accepted {
            return Replay {
                allowed: false,
                refs: pre.flow_refs,
            };
        }
        refs = pre.flow_refs;
        mark = pre.mark;
    }
    let out = interpret_marked(ruleset, hook, &ctx, mark);
    refs.extend(out.flow_refs);
    Replay {
        allowed: out.accepted,
        refs,
    }
}
