//! (e) A subscriber connection (this side offers) renegotiated through any
//! sequence of publish/unpublish: every offer is accepted by a str0m
//! answerer and never repeats an `a=msid` on two m-lines, which browsers
//! refuse ("Duplicate a=msid lines detected").

use std::collections::HashSet;
use std::time::Instant;

use str0m::change::SdpOffer;
use str0m::Rtc;

use super::harness::HostSide;

/// The `a=msid` values of an offer's m-lines.
fn msids(sdp: &str) -> Vec<String> {
    sdp.lines()
        .filter_map(|l| l.trim().strip_prefix("a=msid:"))
        .map(str::to_owned)
        .collect()
}

fn answer(client: &mut Rtc, offer: &str) -> String {
    let offer = SdpOffer::from_sdp_string(offer).expect("an offer str0m parses");
    client
        .sdp_api()
        .accept_offer(offer)
        .expect("offer accepted by the answerer")
        .to_sdp_string()
}

#[test]
fn republishing_never_repeats_an_msid() {
    let mut host = HostSide::new();
    let now = Instant::now();
    let session = host.host.create_offerer(now).expect("offerer");
    let mut client = Rtc::new(now);
    let mut live: Vec<(String, (String, String))> = Vec::new();
    // host publishes once; the guest comes and goes, alone and together
    // with another guest, and a removal and re-add in one offer (a reload).
    let steps: &[(&[&str], &[&str])] = &[
        (&["host", "guest"], &[]),
        (&[], &["guest"]),
        (&["guest"], &[]),
        (&["guest", "carol"], &["guest"]),
        (&[], &["guest", "carol"]),
        (&["guest"], &[]),
        (&["carol"], &["guest"]),
        (&["guest"], &[]),
    ];
    for (n, (add, remove)) in steps.iter().enumerate() {
        let mut gone = Vec::new();
        live.retain(|(label, (a, v))| {
            if remove.contains(&label.as_str()) {
                gone.push(a.clone());
                gone.push(v.clone());
                false
            } else {
                true
            }
        });
        let labels: Vec<String> = add.iter().map(|s| s.to_string()).collect();
        let (offer, mids) = host
            .host
            .renegotiate(session, &labels, &gone, now)
            .unwrap_or_else(|e| panic!("step {n}: {e}"));
        assert_eq!(mids.len(), add.len());
        live.extend(labels.into_iter().zip(mids));
        let all = msids(&offer);
        let unique: HashSet<_> = all.iter().collect();
        assert_eq!(
            unique.len(),
            all.len(),
            "step {n}: duplicate msid in\n{offer}"
        );
        let lines = host.host.offer_lines(session).expect("lines").to_vec();
        assert_eq!(all.len(), lines.len(), "step {n}: one msid per m-line");
        assert_eq!(
            lines.iter().filter(|l| l.live).count(),
            2 * live.len(),
            "step {n}"
        );
        // Audio and video of one publication share the stream id.
        for (_, (a, v)) in &live {
            let stream = |mid: &str| {
                lines
                    .iter()
                    .find(|l| l.mid.to_string() == mid)
                    .map(|l| l.stream_id.clone())
            };
            assert_eq!(stream(a), stream(v), "step {n}");
            assert!(stream(a).is_some());
        }
        let sdp = answer(&mut client, &offer);
        host.host
            .accept_answer(session, &sdp, now)
            .unwrap_or_else(|e| panic!("step {n}: answer refused: {e}"));
    }
    // Removing what is already gone changes nothing.
    let err = host
        .host
        .renegotiate(session, &[], &["0".into(), "999".into()], now)
        .unwrap_err();
    assert!(err.to_string().contains("nothing to negotiate"), "{err}");
}
