//! Capture gaps: how a loss on one side ends or continues the exchanges in flight.
use super::super::parser::{Gap, Was};
use super::{HttpConn, lost_msg};
use crate::events::Timestamp;

impl HttpConn {
    pub(super) fn client_gap(&mut self, lost: u64, ts: Timestamp) {
        if let Some(h) = &mut self.hold {
            h.broken = true;
            return;
        }
        let wire = self.client.wire();
        let cur = self.client_cur;
        match self.client.gap(lost) {
            Gap::InBody => {
                if let Some(s) = self.slot(cur) {
                    s.error(lost_msg(lost));
                    if let Some(r) = &mut s.req {
                        r.body.lose(lost);
                    }
                }
                // The loss may have completed a known-length body.
                self.drive_client(&[], ts);
            }
            Gap::Overran { body_lost, extra } => {
                let cur = self.client_cur.take();
                if let Some(s) = self.slot(cur) {
                    s.error(lost_msg(body_lost));
                    if let Some(r) = &mut s.req {
                        r.body.lose(body_lost);
                    }
                    s.req_done = true;
                    s.request_sent = Some(ts);
                    s.req_wire = wire + body_lost;
                }
                self.placeholder(ts, format!("request lost in capture ({extra} bytes lost)"));
            }
            Gap::Cut(Was::Body) => {
                let cur = self.client_cur.take();
                if let Some(s) = self.slot(cur) {
                    s.req_done = true;
                    s.request_sent = Some(ts);
                    s.req_wire = wire;
                    s.error(lost_msg(lost));
                    if let Some(r) = &mut s.req {
                        r.body.note(format!("body incomplete: {}", lost_msg(lost)));
                    }
                }
            }
            Gap::Cut(Was::Head | Was::Boundary) => {
                self.placeholder(ts, format!("request lost in capture ({lost} bytes lost)"));
            }
            Gap::Ignored => {}
        }
    }

    pub(super) fn server_gap(&mut self, lost: u64, ts: Timestamp) {
        // A held response is paired now: the bytes after it are gone.
        self.unstall(true);
        let wire = self.server.wire();
        match self.server.gap(lost) {
            Gap::InBody => {
                if let Some(s) = self.cur_server_slot() {
                    s.error(lost_msg(lost));
                    if let Some(r) = &mut s.resp {
                        r.body.lose(lost);
                    }
                }
                self.drive_server(&[], ts);
            }
            Gap::Overran { body_lost, extra } => {
                let cur = self.server_cur.take().map(|(id, _)| id);
                if let Some(s) = self.slot(cur) {
                    s.error(lost_msg(body_lost));
                    s.resp_wire += wire + body_lost;
                    if let Some(r) = &mut s.resp {
                        r.body.lose(body_lost);
                    }
                    s.resp_done = true;
                    s.end = Some(ts);
                }
                self.response_lost(extra, ts);
            }
            Gap::Cut(Was::Body) => {
                let cur = self.server_cur.take().map(|(id, _)| id);
                if let Some(s) = self.slot(cur) {
                    s.resp_wire += wire;
                    s.resp_done = true;
                    s.end = Some(ts);
                    s.error(lost_msg(lost));
                    if let Some(r) = &mut s.resp {
                        r.body.note(format!("body incomplete: {}", lost_msg(lost)));
                    }
                }
            }
            Gap::Cut(Was::Head | Was::Boundary) => self.response_lost(lost, ts),
            Gap::Ignored => {}
        }
        self.check_hold();
        self.drain();
    }

    /// The start of the next response was lost: its request gets no response.
    fn response_lost(&mut self, lost: u64, ts: Timestamp) {
        self.server_cur = None;
        if let Some(s) = self.awaiting_slot() {
            s.resp_done = true;
            s.end = Some(ts);
            s.error(format!("response lost in capture ({lost} bytes lost)"));
        }
    }
}
