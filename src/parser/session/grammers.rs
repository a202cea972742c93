//! grammers' `Session` trait over `StoreSession`: reads from the in-memory copy, writes
//! through the store (see the parent module for which writes are immediate and which batched).

use grammers_session::types::{
    ChannelState, DcOption, PeerId, PeerInfo, UpdateState, UpdatesState,
};
use grammers_session::{BoxFuture, Session};

use super::{SessionError, StoreSession};

impl Session for StoreSession {
    type Error = SessionError;

    fn home_dc_id(&self) -> Result<i32, SessionError> {
        Ok(self.data()?.home_dc)
    }

    fn set_home_dc_id(&self, dc_id: i32) -> BoxFuture<'_, Result<(), SessionError>> {
        Box::pin(self.store_home(dc_id))
    }

    fn dc_option(&self, dc_id: i32) -> Result<Option<DcOption>, SessionError> {
        Ok(self.data()?.dc_options.get(&dc_id).cloned())
    }

    fn set_dc_option(&self, dc_option: &DcOption) -> BoxFuture<'_, Result<(), SessionError>> {
        let dc = dc_option.clone();
        Box::pin(async move {
            // getConfig rewrites every DC's address; keep a key we already hold for it.
            let mut dc = dc;
            if dc.auth_key.is_none()
                && let Some(existing) = self.data()?.dc_options.get(&dc.id)
            {
                dc.auth_key = existing.auth_key;
            }
            self.store_dc(&dc).await
        })
    }

    fn peer(&self, peer: PeerId) -> BoxFuture<'_, Result<Option<PeerInfo>, SessionError>> {
        Box::pin(async move {
            let data = self.data()?;
            if peer == PeerId::self_user() {
                return Ok(data
                    .peer_infos
                    .values()
                    .find(|p| {
                        matches!(
                            p,
                            PeerInfo::User {
                                is_self: Some(true),
                                ..
                            }
                        )
                    })
                    .cloned());
            }
            Ok(data.peer_infos.get(&peer).cloned())
        })
    }

    fn cache_peer(&self, peer: PeerInfo) -> BoxFuture<'_, Result<(), SessionError>> {
        Box::pin(async move {
            let merged = {
                let mut data = self.data()?;
                let entry = data
                    .peer_infos
                    .entry(peer.id())
                    .or_insert_with(|| peer.clone());
                entry.extend_info(&peer);
                entry.clone()
            };
            self.pending
                .lock()
                .map_err(|_| SessionError::Poisoned)?
                .peers
                .insert(merged.id(), merged);
            self.maybe_flush().await
        })
    }

    fn updates_state(&self) -> BoxFuture<'_, Result<UpdatesState, SessionError>> {
        Box::pin(async move { Ok(self.data()?.updates_state.clone()) })
    }

    fn set_update_state(&self, update: UpdateState) -> BoxFuture<'_, Result<(), SessionError>> {
        Box::pin(async move {
            {
                let mut data = self.data()?;
                let mut pending = self.pending.lock().map_err(|_| SessionError::Poisoned)?;
                match update {
                    UpdateState::All(s) => {
                        for c in &s.channels {
                            pending.channels.insert(c.id, c.pts);
                        }
                        data.updates_state = s;
                        pending.state = true;
                    }
                    UpdateState::Primary { pts, date, seq } => {
                        data.updates_state.pts = pts;
                        data.updates_state.date = date;
                        data.updates_state.seq = seq;
                        pending.state = true;
                    }
                    UpdateState::Secondary { qts } => {
                        data.updates_state.qts = qts;
                        pending.state = true;
                    }
                    UpdateState::Channel { id, pts } => {
                        match data.updates_state.channels.iter_mut().find(|c| c.id == id) {
                            Some(c) => c.pts = pts,
                            None => data.updates_state.channels.push(ChannelState { id, pts }),
                        }
                        pending.channels.insert(id, pts);
                    }
                }
            }
            self.maybe_flush().await
        })
    }
}
