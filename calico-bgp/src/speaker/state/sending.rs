//! What the speaker sends its peers: changes propagated to every established peer (once
//! per update group, and every multipath change to ADD-PATH peers), whole tables, and
//! batches queued to a peer or held back while its send queue is stalled.

use super::*;

impl SpeakerState {
    /// Sends every established peer (but `except`) what `changes` change for it.
    pub(super) fn propagate(
        &mut self,
        changes: &[Change],
        except: Option<PeerId>,
        out: &mut Vec<Output>,
    ) {
        // Multipath changes matter to ADD-PATH peers only (none: no copy of a full table).
        let add_path = self.peers.iter().any(|p| p.add_path_out.is_some());
        let touched: Vec<IpNet> = if add_path {
            changes.iter().map(|c| c.prefix).collect()
        } else {
            Vec::new()
        };
        // Without ADD-PATH, a peer is sent only best paths, and never its own: the changes
        // between its own paths (a table it sends us) change nothing it is sent.
        let targets = self.targets(except);
        let concerned = |c: &&Change| add_path || concerns(c, &targets);
        let deltas = deltas_of(changes.iter().filter(concerned), self.rib.exports());
        self.advertise(&deltas, &touched, except, out);
    }

    /// The established peers but `except`, by id. (A restarting peer is known to the RIB,
    /// its stale routes are, but has no session to send on.)
    fn targets(&self, except: Option<PeerId>) -> Vec<PeerId> {
        let mut targets: Vec<PeerId> = self
            .rib
            .peers()
            .ids()
            .filter(|id| Some(*id) != except && self.peers.is_established(*id))
            .collect();
        targets.sort_unstable();
        targets
    }

    /// Sends every established peer (but `except`) what changed for it: among `deltas` (best
    /// path changes) for peers sent one path per prefix, among `touched` (every prefix whose
    /// multipath set changed) on the families a peer is sent every path of (ADD-PATH).
    pub(super) fn advertise(
        &mut self,
        deltas: &[Delta],
        touched: &[IpNet],
        except: Option<PeerId>,
        out: &mut Vec<Output>,
    ) {
        if deltas.is_empty() && touched.is_empty() {
            return;
        }
        let mut targets = self.targets(except);
        // A peer whose send queue is stalled is left out; what changed is noted for it.
        targets.retain(
            |id| match self.peers.get_mut(*id).and_then(|p| p.backlog.as_mut()) {
                Some(backlog) => {
                    backlog.note(deltas, touched);
                    false
                }
                None => true,
            },
        );
        let alone = if targets.len() > 1 {
            sources_of(deltas, &self.rib)
        } else {
            HashSet::new()
        };
        // Computed from the first member's view, encoded once, sent to each member.
        for group in groups::partition(&self.rib, &self.peers, &targets, &alone) {
            let first = group.members[0];
            let Some(mut exporter) = self.rib.exporter(first) else {
                continue;
            };
            let add_path = self
                .peers
                .get_mut(first)
                .and_then(|p| p.add_path_out.as_mut());
            let skip = add_path
                .as_ref()
                .map_or(AddPathFamilies::NONE, |a| a.families());
            let mut batch = Batch::for_deltas(&mut exporter, deltas, skip);
            if let Some(add_path) = add_path {
                let touched = touched.iter().copied();
                batch.merge(add_path.update(&self.rib, &mut exporter, touched));
            }
            self.send_batch_to(&group.members, batch, false, out);
        }
    }

    /// Sends a peer its whole Adj-RIB-Out for `families`, then End-of-RIB (held back while
    /// a restarting speaker's exports are not known yet).
    pub(super) fn send_table(&mut self, to: PeerId, families: &[AfiSafi], out: &mut Vec<Output>) {
        let Some(mut exporter) = self.rib.exporter(to) else {
            return;
        };
        let add_path = self.peers.get_mut(to).and_then(|p| p.add_path_out.as_mut());
        let (single, several): (Vec<AfiSafi>, Vec<AfiSafi>) = families.iter().partition(|f| {
            !add_path
                .as_ref()
                .is_some_and(|a| a.families().contains(**f))
        });
        let mut batch = Batch::table(&mut exporter, &single);
        if let Some(add_path) = add_path {
            batch.merge(add_path.table(&self.rib, &mut exporter, &several));
        }
        batch.end_of_rib = self.end_of_rib(&[to], families);
        self.send_batch(to, batch, true, out);
    }

    /// Sends each of `ids` (established peers) its whole table, as [`Self::send_table`]
    /// does, computed and encoded once per update group of peers whose tables are alike
    /// (`refilter::table_groups`: a peer that sent us routes, or is sent several paths per
    /// prefix, is alone).
    pub(super) fn send_tables(&mut self, ids: &[PeerId], out: &mut Vec<Output>) {
        for group in super::refilter::table_groups(&self.rib, &self.peers, ids) {
            let first = group.members[0];
            let families = self.peers.get(first).and_then(|p| p.session_families());
            let Some(families) = families.map(<[AfiSafi]>::to_vec) else {
                continue;
            };
            if group.members.len() == 1 {
                self.send_table(first, &families, out);
                continue;
            }
            let Some(mut exporter) = self.rib.exporter(first) else {
                continue;
            };
            let mut batch = Batch::table(&mut exporter, &families);
            batch.end_of_rib = self.end_of_rib(&group.members, &families);
            self.send_batch_to(&group.members, batch, true, out);
        }
    }

    /// The End-of-RIB markers that end a whole table sent to `to` on `families`: none while
    /// we restart and our own routes are not known yet (each of `to` is then owed them, see
    /// `set_exports`).
    fn end_of_rib(&mut self, to: &[PeerId], families: &[AfiSafi]) -> Vec<AfiSafi> {
        let restarting = self.options.graceful_restart.is_some_and(|g| g.restarting);
        if !restarting || self.exports_set {
            return families.to_vec();
        }
        for id in to {
            if let Some(p) = self.peers.get_mut(*id) {
                p.eor_owed = true;
            }
        }
        Vec::new()
    }

    pub(super) fn send_batch(
        &mut self,
        to: PeerId,
        batch: Batch,
        always: bool,
        out: &mut Vec<Output>,
    ) {
        self.send_batch_to(&[to], batch, always, out);
    }

    /// Encodes `batch` once, for the session of the first of `members` (an update group:
    /// the others' sessions encode alike), and sends the same bytes to each.
    pub(super) fn send_batch_to(
        &mut self,
        members: &[PeerId],
        batch: Batch,
        always: bool,
        out: &mut Vec<Output>,
    ) {
        if batch.is_empty() && !always {
            return;
        }
        let Some(peer) = members.first().and_then(|id| self.peers.get(*id)) else {
            return;
        };
        let Some((negotiated, _)) = &peer.session else {
            return;
        };
        let ctx = negotiated.send_context();
        let bytes: SharedBytes = batch.encode(&ctx, peer.config.address).into();
        if bytes.is_empty() {
            return;
        }
        let messages = messages_in(&bytes);
        for &to in members {
            if let Some(peer) = self.peers.get_mut(to) {
                *peer.counters.updates_sent.get_or_insert(0) += messages;
                out.push(Output::Send {
                    peer: to,
                    bytes: bytes.clone(),
                });
            }
        }
    }
}

/// How many BGP messages `bytes` (whole messages, back to back) holds: each header's
/// length field (octets 16–17) says where the next begins.
fn messages_in(bytes: &[u8]) -> u64 {
    let (mut at, mut n) = (0usize, 0u64);
    while let Some(len) = bytes.get(at + 16..at + 18) {
        let len = usize::from(u16::from_be_bytes([len[0], len[1]]));
        if len < 19 {
            break;
        }
        at += len;
        n += 1;
    }
    n
}

/// Whether a change of best path may change what one of `targets` is sent: whether its
/// best path before or after comes from another peer than one of them (see
/// [`crate::rib::export::Exporter::route_with`]: never a path back to its peer).
fn concerns(change: &Change, targets: &[PeerId]) -> bool {
    let peers = [&change.old_best, &change.new_best].map(|p| p.as_ref().map(|p| p.peer));
    targets
        .iter()
        .any(|t| peers.iter().any(|p| p.is_some_and(|p| p != *t)))
}
