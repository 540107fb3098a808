//! WHIP/WHEP session URLs as capabilities (RFC 9725 section 4.3: the
//! session's URL is what lets a client trickle candidates to it or end
//! it). Each session's resource is named by 128 random bits, never by its
//! internal id, and PATCH / DELETE must name it under the same stream: a
//! wrong stream or id is "no such session", without saying which.

use std::collections::HashMap;
use std::net::IpAddr;

use costream_hub::StreamKey;
use costream_rtc::SessionId;
use parking_lot::Mutex;

/// The resources of live WHIP/WHEP sessions; one is removed when its
/// session ends, so there are never more than sessions.
#[derive(Default)]
pub struct Resources {
    by_id: Mutex<HashMap<String, (StreamKey, SessionId, IpAddr)>>,
}

impl Resources {
    /// Names `session` of `key`, made for a client at `ip`, with a new
    /// unguessable id.
    pub fn insert(
        &self,
        key: StreamKey,
        session: SessionId,
        ip: IpAddr,
    ) -> Result<String, getrandom::Error> {
        let mut bits = [0u8; 16];
        getrandom::fill(&mut bits)?;
        let id = hex::encode(bits);
        self.by_id.lock().insert(id.clone(), (key, session, ip));
        Ok(id)
    }

    /// The session `id` names, if it is one of `key`'s.
    pub fn get(&self, key: &StreamKey, id: &str) -> Option<SessionId> {
        match self.by_id.lock().get(id) {
            Some((k, session, _)) if k == key => Some(*session),
            _ => None,
        }
    }

    /// Sessions of clients at `ip`.
    pub fn count_ip(&self, ip: IpAddr) -> usize {
        self.by_id
            .lock()
            .values()
            .filter(|(_, _, i)| *i == ip)
            .count()
    }

    pub fn remove(&self, id: &str) {
        self.by_id.lock().remove(id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_random_and_bound_to_their_stream() {
        let r = Resources::default();
        let ip: IpAddr = [192, 0, 2, 1].into();
        let key = StreamKey::parse("live/a").unwrap();
        let other = StreamKey::parse("live/b").unwrap();
        let a = r.insert(key.clone(), SessionId(1), ip).unwrap();
        let b = r.insert(key.clone(), SessionId(2), ip).unwrap();
        assert_eq!(r.count_ip(ip), 2);
        assert_eq!(a.len(), 32);
        assert_ne!(a, b);
        assert_eq!(r.get(&key, &a), Some(SessionId(1)));
        assert_eq!(r.get(&other, &a), None, "another stream's URL");
        assert_eq!(r.get(&key, "1"), None, "an internal id");
        r.remove(&a);
        assert_eq!(r.get(&key, &a), None);
    }
}
