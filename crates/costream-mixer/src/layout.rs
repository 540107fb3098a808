//! Where each input goes on the canvas. Rectangles are in pixels, with even
//! coordinates and sizes (I420 chroma is subsampled by two).

/// A rectangle of the canvas.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rect {
    pub x: usize,
    pub y: usize,
    pub w: usize,
    pub h: usize,
}

impl Rect {
    /// The part inside a `width` x `height` picture, if any.
    pub fn clip(self, width: usize, height: usize) -> Option<Rect> {
        if self.x >= width || self.y >= height || self.w == 0 || self.h == 0 {
            return None;
        }
        Some(Rect {
            x: self.x,
            y: self.y,
            w: self.w.min(width - self.x),
            h: self.h.min(height - self.y),
        })
    }

    /// The largest rectangle of `aspect` (w/h) centred in this one.
    pub fn fit(self, aspect: f64) -> Rect {
        if !(aspect.is_finite() && aspect > 0.0) {
            return self;
        }
        let (w, h) = if self.w as f64 / self.h.max(1) as f64 > aspect {
            ((self.h as f64 * aspect) as usize, self.h)
        } else {
            (self.w, (self.w as f64 / aspect) as usize)
        };
        let (w, h) = (w & !1, h & !1);
        Rect {
            x: (self.x + (self.w - w) / 2) & !1,
            y: (self.y + (self.h - h) / 2) & !1,
            w,
            h,
        }
    }
}

/// One input's place: which input, where, and in front of which (higher
/// `z` is drawn later, on top).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placement {
    pub input: usize,
    pub rect: Rect,
    pub z: i32,
}

/// How the inputs share the canvas.
#[derive(Debug, Clone, PartialEq)]
pub enum Layout {
    /// Equal tiles, as square a grid as fits the inputs.
    Grid,
    /// The first input (the host) large on top, the others in a strip below.
    Speaker,
    /// The first input full screen, the others small in the bottom-right
    /// corner, on top of it.
    Pip,
    /// Given rectangles, as fractions of the canvas (x, y, w, h in 0..=1)
    /// with a z-order, for the inputs in order; inputs beyond the list are
    /// not shown.
    Custom(Vec<([f64; 4], i32)>),
}

impl Layout {
    /// The placements of `n` inputs on a `width` x `height` canvas, in
    /// drawing order (lowest `z` first).
    pub fn place(&self, n: usize, width: usize, height: usize) -> Vec<Placement> {
        let even = |v: f64| (v.max(0.0) as usize) & !1;
        let cell = |x: f64, y: f64, w: f64, h: f64| Rect {
            x: even(x),
            y: even(y),
            w: even(w),
            h: even(h),
        };
        let (fw, fh) = (width as f64, height as f64);
        let mut out: Vec<Placement> = match self {
            _ if n == 0 => Vec::new(),
            Layout::Grid => {
                let cols = (n as f64).sqrt().ceil() as usize;
                let rows = n.div_ceil(cols);
                let (cw, ch) = (fw / cols as f64, fh / rows as f64);
                (0..n)
                    .map(|i| {
                        let (r, c) = (i / cols, i % cols);
                        // A last row with fewer inputs is centred.
                        let in_row = if r == rows - 1 { n - r * cols } else { cols };
                        let shift = (cols - in_row) as f64 * cw / 2.0;
                        Placement {
                            input: i,
                            rect: cell(shift + c as f64 * cw, r as f64 * ch, cw, ch),
                            z: 0,
                        }
                    })
                    .collect()
            }
            Layout::Speaker => {
                if n == 1 {
                    vec![Placement {
                        input: 0,
                        rect: cell(0.0, 0.0, fw, fh),
                        z: 0,
                    }]
                } else {
                    let strip = fh / 4.0;
                    let others = n - 1;
                    let sw = fw / others.max(4) as f64;
                    let shift = (fw - sw * others as f64) / 2.0;
                    let mut v = vec![Placement {
                        input: 0,
                        rect: cell(0.0, 0.0, fw, fh - strip),
                        z: 0,
                    }];
                    v.extend((1..n).map(|i| Placement {
                        input: i,
                        rect: cell(shift + (i - 1) as f64 * sw, fh - strip, sw, strip),
                        z: 0,
                    }));
                    v
                }
            }
            Layout::Pip => {
                let (pw, ph) = (fw / 4.0, fh / 4.0);
                let margin = fh / 40.0;
                let mut v = vec![Placement {
                    input: 0,
                    rect: cell(0.0, 0.0, fw, fh),
                    z: 0,
                }];
                // Right to left along the bottom edge, then upwards.
                let per_row = ((fw - margin) / (pw + margin)).floor().max(1.0) as usize;
                v.extend((1..n).map(|i| {
                    let k = i - 1;
                    let (row, col) = (k / per_row, k % per_row);
                    Placement {
                        input: i,
                        rect: cell(
                            fw - (col + 1) as f64 * (pw + margin),
                            fh - (row + 1) as f64 * (ph + margin),
                            pw,
                            ph,
                        ),
                        z: 1,
                    }
                }));
                v
            }
            Layout::Custom(rects) => rects
                .iter()
                .take(n)
                .enumerate()
                .map(|(i, ([x, y, w, h], z))| Placement {
                    input: i,
                    rect: cell(x * fw, y * fh, w * fw, h * fh),
                    z: *z,
                })
                .collect(),
        };
        out.retain(|p| p.rect.clip(width, height).is_some());
        out.sort_by_key(|p| p.z);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn overlap(a: Rect, b: Rect) -> bool {
        a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h
    }

    #[test]
    fn grids_tile_without_overlap() {
        for n in 1..=9 {
            let p = Layout::Grid.place(n, 1280, 720);
            assert_eq!(p.len(), n);
            for (i, a) in p.iter().enumerate() {
                assert!(
                    a.rect.x + a.rect.w <= 1280 && a.rect.y + a.rect.h <= 720,
                    "{n}: {a:?}"
                );
                assert!(a.rect.w % 2 == 0 && a.rect.x % 2 == 0);
                for b in &p[i + 1..] {
                    assert!(!overlap(a.rect, b.rect), "{n}: {a:?} {b:?}");
                }
            }
        }
        let two = Layout::Grid.place(2, 1280, 720);
        assert_eq!(
            two[0].rect,
            Rect {
                x: 0,
                y: 0,
                w: 640,
                h: 720
            }
        );
        assert_eq!(
            two[1].rect,
            Rect {
                x: 640,
                y: 0,
                w: 640,
                h: 720
            }
        );
    }

    #[test]
    fn speaker_and_pip_put_the_host_first() {
        let s = Layout::Speaker.place(3, 1280, 720);
        assert_eq!(
            s[0].rect,
            Rect {
                x: 0,
                y: 0,
                w: 1280,
                h: 540
            }
        );
        assert!(s[1..].iter().all(|p| p.rect.y == 540 && p.rect.h == 180));
        let p = Layout::Pip.place(3, 1280, 720);
        assert_eq!(
            p[0].rect,
            Rect {
                x: 0,
                y: 0,
                w: 1280,
                h: 720
            }
        );
        assert!(p[1..]
            .iter()
            .all(|q| q.z == 1 && q.rect.w == 320 && q.rect.y + q.rect.h < 720));
        assert!(!overlap(p[1].rect, p[2].rect));
    }

    #[test]
    fn custom_rectangles_keep_their_order() {
        let l = Layout::Custom(vec![([0.5, 0.0, 0.5, 1.0], 2), ([0.0, 0.0, 1.0, 1.0], 1)]);
        let p = l.place(3, 1280, 720);
        assert_eq!(p.len(), 2, "a third input has no rectangle");
        assert_eq!((p[0].input, p[0].z), (1, 1));
        assert_eq!((p[1].input, p[1].rect.x), (0, 640));
    }

    #[test]
    fn fitting_keeps_the_aspect() {
        let r = Rect {
            x: 0,
            y: 0,
            w: 640,
            h: 720,
        }
        .fit(16.0 / 9.0);
        assert_eq!(
            r,
            Rect {
                x: 0,
                y: 180,
                w: 640,
                h: 360
            }
        );
    }
}
