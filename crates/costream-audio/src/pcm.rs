//! Interleaved PCM FIFO that hands out fixed-size codec frames (960 samples per channel for
//! Opus, 1024 for AAC) from decoder output of another size.

/// Holds interleaved samples until a whole frame is available. The backing `Vec` is reused,
/// so steady-state operation does not allocate.
#[derive(Debug)]
pub(crate) struct FrameBuffer<T> {
    data: Vec<T>,
    /// Index of the first unread sample in `data`.
    start: usize,
    /// Interleaved samples per frame (samples per channel × channels).
    frame_len: usize,
}

impl<T: Copy> FrameBuffer<T> {
    pub fn new(frame_samples: usize, channels: usize) -> Self {
        let frame_len = frame_samples * channels;
        FrameBuffer {
            data: Vec::with_capacity(frame_len * 4),
            start: 0,
            frame_len,
        }
    }

    pub fn extend(&mut self, pcm: &[T]) {
        // Compact lazily: what is left before a push is less than a frame, so the move is short.
        if self.start > 0 {
            self.data.drain(..self.start);
            self.start = 0;
        }
        self.data.extend_from_slice(pcm);
    }

    /// The next whole frame, if one is buffered.
    pub fn pop_frame(&mut self) -> Option<&[T]> {
        let end = self.start + self.frame_len;
        if end > self.data.len() {
            return None;
        }
        let frame = &self.data[self.start..end];
        self.start = end;
        Some(frame)
    }

    pub fn clear(&mut self) {
        self.data.clear();
        self.start = 0;
    }
}

/// i16 PCM to the [-1, 1) floats Opus and the resampler take.
/// A sample in -1..1 as i16, clamped (never wraps).
pub(crate) fn f32_to_i16(x: f32) -> i16 {
    (x * 32767.0).round().clamp(-32768.0, 32767.0) as i16
}

pub(crate) fn i16_to_f32(input: &[i16], out: &mut Vec<f32>) {
    out.clear();
    out.extend(input.iter().map(|&s| f32::from(s) * (1.0 / 32768.0)));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f32_to_i16_saturates() {
        assert_eq!(f32_to_i16(1.5), 32767);
        assert_eq!(f32_to_i16(-1.5), -32768);
        assert_eq!(f32_to_i16(0.5), 16384);
    }

    #[test]
    fn frames_span_pushes_and_leftover_waits() {
        let mut fifo = FrameBuffer::<i16>::new(3, 2);
        fifo.extend(&[1, 1, 2, 2]);
        assert!(fifo.pop_frame().is_none());
        fifo.extend(&[3, 3, 4, 4, 5, 5, 6, 6, 7, 7]);
        assert_eq!(fifo.pop_frame(), Some(&[1, 1, 2, 2, 3, 3][..]));
        assert_eq!(fifo.pop_frame(), Some(&[4, 4, 5, 5, 6, 6][..]));
        assert!(fifo.pop_frame().is_none());
        fifo.extend(&[8, 8, 9, 9]);
        assert_eq!(fifo.pop_frame(), Some(&[7, 7, 8, 8, 9, 9][..]));
        fifo.extend(&[1, 1, 2, 2]);
        fifo.clear();
        fifo.extend(&[3, 3, 4, 4, 5, 5]);
        assert_eq!(fifo.pop_frame(), Some(&[3, 3, 4, 4, 5, 5][..]));
    }

    #[test]
    fn converts_full_scale() {
        let mut out = Vec::new();
        i16_to_f32(&[i16::MIN, 0, 16384], &mut out);
        assert_eq!(out, [-1.0, 0.0, 0.5]);
    }
}
