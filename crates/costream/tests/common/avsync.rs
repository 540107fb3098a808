//! Lip-sync measurement: a source that flashes white and beeps at the same
//! instant every 1.5 s, and a reader that finds, in what ffmpeg decodes
//! from a stream, when each flash and each beep begins.

use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};

/// ffmpeg pushing black video that turns white for 100 ms every 1.5 s (30
/// fps, a keyframe every 2 s and no others) and a 1 kHz tone sounding
/// during the same 100 ms, over RTMP in real time. The period is longer
/// than twice any offset worth telling apart (a backlog of up to a second
/// must not pass for sync with the next flash).
pub fn push_flash_and_beep(url: &str) -> Child {
    super::ffmpeg_push_lavfi(
        url,
        "color=c=black:size=320x240:rate=30,\
         drawbox=x=0:y=0:w=iw:h=ih:color=white:t=fill:enable='lt(mod(t,1.5),0.1)'",
        "aevalsrc=exprs='if(lt(mod(t,1.5),0.1),0.8*sin(2*PI*1000*t),0)':s=48000",
        &["-g", "60", "-sc_threshold", "0"],
        "96k",
    )
}

/// ffmpeg pushing a solid colour and silence.
pub fn push_silent_colour(url: &str, colour: &str) -> Child {
    super::ffmpeg_push_lavfi(
        url,
        &format!("color=c={colour}:size=320x240:rate=15"),
        "aevalsrc=exprs=0:s=48000",
        &["-g", "30"],
        "64k",
    )
}

/// When flashes and beeps begin in a stream, in seconds on the stream's
/// timeline (as ffmpeg presents both).
#[derive(Debug, Default)]
pub struct Onsets {
    pub flashes: Vec<f64>,
    pub beeps: Vec<f64>,
}

impl Onsets {
    /// Each flash's beep minus the flash, in ms (positive: the sound is
    /// late), for the flashes with a beep within half the period.
    pub fn offsets_ms(&self) -> Vec<f64> {
        self.flashes
            .iter()
            .filter_map(|f| {
                let b = self
                    .beeps
                    .iter()
                    .min_by(|x, y| (*x - f).abs().total_cmp(&(*y - f).abs()))?;
                ((b - f).abs() < 0.75).then(|| (b - f) * 1000.0)
            })
            .collect()
    }
}

/// Reads `seconds` of `url` with ffmpeg: the pictures' mean luma (in the
/// region `crop`, an ffmpeg crop filter) with their pts, and the sound as
/// PCM placed on the same timeline (gaps filled), from which the onsets.
pub async fn read_onsets(url: &str, seconds: u32, crop: &str) -> Onsets {
    let t = seconds.to_string();
    let vf = format!("{crop},scale=16:16,format=gray,showinfo");
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-nostats", "-loglevel", "info", "-i", url])
        .args(["-t", &t, "-map", "0:v", "-vf", &vf, "-f", "null", "-"])
        .args([
            "-t",
            &t,
            "-map",
            "0:a",
            "-af",
            "aresample=async=1:first_pts=0",
        ])
        .args(["-ac", "1", "-ar", "48000", "-f", "f32le", "-"])
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(u64::from(seconds) + 30), out)
        .await
        .expect("ffmpeg read the stream in time")
        .expect("ffmpeg runs");
    let log = String::from_utf8_lossy(&out.stderr);
    let pictures: Vec<(f64, u32)> = log
        .lines()
        .filter(|l| l.contains("Parsed_showinfo") && l.contains("pts_time:"))
        .filter_map(|l| {
            let t = l.split("pts_time:").nth(1)?.split_whitespace().next()?;
            let m = l
                .split("mean:[")
                .nth(1)?
                .split(|c: char| !c.is_ascii_digit())
                .next()?;
            Some((t.parse().ok()?, m.parse().ok()?))
        })
        .collect();
    assert!(pictures.len() > 10, "too few pictures read: {log}");
    let mut flashes = Vec::new();
    let mut was_white = true; // a stream read mid-flash: not an onset
    for (t, mean) in &pictures {
        let white = *mean > 128;
        if white && !was_white {
            flashes.push(*t);
        }
        was_white = white;
    }
    let pcm: Vec<f32> = out
        .stdout
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    let mut beeps = Vec::new();
    let mut quiet = 0usize; // a stream read mid-beep: not an onset
    for (i, s) in pcm.iter().enumerate() {
        if s.abs() > 0.3 {
            if quiet >= 48_000 / 5 {
                beeps.push(i as f64 / 48_000.0);
            }
            quiet = 0;
        } else {
            quiet += 1;
        }
    }
    Onsets { flashes, beeps }
}
