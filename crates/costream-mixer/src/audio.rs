//! The audio mix: inputs summed with their gains, then soft-clipped so
//! that loud moments bend smoothly instead of wrapping or clipping hard.

/// Mixes interleaved f32 blocks of the same length (one per input).
#[derive(Debug, Default)]
pub struct AudioMixer {
    out: Vec<f32>,
}

impl AudioMixer {
    pub fn new() -> AudioMixer {
        AudioMixer::default()
    }

    /// Sums `inputs` (samples and gain each; a missing or short input counts
    /// as silence where it has no samples) into `len` samples, soft-clipped.
    pub fn mix(&mut self, len: usize, inputs: &[(&[f32], f32)]) -> &[f32] {
        self.out.clear();
        self.out.resize(len, 0.0);
        for (samples, gain) in inputs {
            for (o, s) in self.out.iter_mut().zip(samples.iter()) {
                *o += s * gain;
            }
        }
        for o in &mut self.out {
            *o = soft_clip(*o);
        }
        &self.out
    }
}

/// Where soft clipping starts: below it a sample passes unchanged.
const KNEE: f32 = 0.75;

/// Linear up to the knee, then bending smoothly towards ±1, never beyond:
/// continuous, with a continuous slope, monotonic and odd.
pub fn soft_clip(x: f32) -> f32 {
    if !x.is_finite() {
        return 0.0;
    }
    let a = x.abs();
    if a <= KNEE {
        return x;
    }
    let room = 1.0 - KNEE;
    let over = (a - KNEE) / room;
    // tanh keeps slope 1 at the knee and tends to 1.
    (KNEE + room * over.tanh()).copysign(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(freq: f32, amp: f32, n: usize) -> Vec<f32> {
        (0..n)
            .map(|i| amp * (2.0 * std::f32::consts::PI * freq * i as f32 / 48_000.0).sin())
            .collect()
    }

    #[test]
    fn quiet_inputs_add_up_exactly() {
        let a = tone(440.0, 0.2, 960);
        let b = tone(1000.0, 0.2, 960);
        let mut m = AudioMixer::new();
        let out = m.mix(960, &[(&a, 1.0), (&b, 0.5)]).to_vec();
        for i in 0..960 {
            assert!((out[i] - (a[i] + 0.5 * b[i])).abs() < 1e-6);
        }
        // A short input is silence after its end; gain 0 mutes.
        let out = m.mix(4, &[(&[0.1, 0.1], 1.0), (&[0.5; 4], 0.0)]).to_vec();
        assert_eq!(out, vec![0.1, 0.1, 0.0, 0.0]);
    }

    #[test]
    fn loud_sums_bend_and_never_wrap() {
        let a = tone(440.0, 0.9, 960);
        let b = tone(440.0, 0.9, 960);
        let mut m = AudioMixer::new();
        let out = m.mix(960, &[(&a, 1.0), (&b, 1.0)]).to_vec();
        for (i, o) in out.iter().enumerate() {
            assert!(o.abs() < 1.0, "{o}");
            // The sign follows the input: no wrap-around.
            assert!(
                o.signum() == a[i].signum() || a[i].abs() < 1e-3,
                "{i}: {o} {}",
                a[i]
            );
        }
        // Monotonic and continuous through the knee.
        let mut last = -2.0;
        for k in 0..=4000 {
            let x = -2.0 + k as f32 / 1000.0;
            let y = soft_clip(x);
            assert!(y >= last - 1e-6, "{x}");
            last = y;
        }
        assert!((soft_clip(KNEE + 1e-4) - soft_clip(KNEE)).abs() < 1e-3);
        assert_eq!(soft_clip(f32::NAN), 0.0);
    }
}
