//! I420 pictures (what H.264 decoders give and encoders take): a full-size
//! luma plane and two quarter-size chroma planes.

use crate::layout::Rect;

/// A colour in Y'CbCr (BT.601, limited range), the pictures' own space.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Color {
    pub y: u8,
    pub u: u8,
    pub v: u8,
}

impl Color {
    pub const BLACK: Color = Color {
        y: 16,
        u: 128,
        v: 128,
    };

    /// From 8-bit R'G'B' (BT.601 limited range, as video encoders expect).
    pub fn rgb(r: u8, g: u8, b: u8) -> Color {
        let (r, g, b) = (f32::from(r), f32::from(g), f32::from(b));
        let y = 16.0 + 0.257 * r + 0.504 * g + 0.098 * b;
        let u = 128.0 - 0.148 * r - 0.291 * g + 0.439 * b;
        let v = 128.0 + 0.439 * r - 0.368 * g - 0.071 * b;
        let c = |x: f32| x.round().clamp(0.0, 255.0) as u8;
        Color {
            y: c(y),
            u: c(u),
            v: c(v),
        }
    }

    /// Back to R'G'B' (for checks and logs).
    pub fn to_rgb(self) -> (u8, u8, u8) {
        let y = 1.164 * (f32::from(self.y) - 16.0);
        let u = f32::from(self.u) - 128.0;
        let v = f32::from(self.v) - 128.0;
        let c = |x: f32| x.round().clamp(0.0, 255.0) as u8;
        (
            c(y + 1.596 * v),
            c(y - 0.392 * u - 0.813 * v),
            c(y + 2.017 * u),
        )
    }
}

/// An I420 picture. Width and height are even.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Picture {
    pub width: usize,
    pub height: usize,
    pub y: Vec<u8>,
    pub u: Vec<u8>,
    pub v: Vec<u8>,
}

impl Picture {
    /// A picture of one colour; odd sizes are rounded up to even.
    pub fn filled(width: usize, height: usize, color: Color) -> Picture {
        let (width, height) = (even(width.max(2)), even(height.max(2)));
        let chroma = (width / 2) * (height / 2);
        Picture {
            width,
            height,
            y: vec![color.y; width * height],
            u: vec![color.u; chroma],
            v: vec![color.v; chroma],
        }
    }

    /// From planes with strides (a decoder's output), copied.
    pub fn from_planes(
        width: usize,
        height: usize,
        (y, u, v): (&[u8], &[u8], &[u8]),
        (y_stride, u_stride, v_stride): (usize, usize, usize),
    ) -> Option<Picture> {
        let (w, h) = (width & !1, height & !1);
        if w == 0 || h == 0 || y_stride < w || u_stride < w / 2 || v_stride < w / 2 {
            return None;
        }
        let plane = |src: &[u8], stride: usize, pw: usize, ph: usize| -> Option<Vec<u8>> {
            let mut out = Vec::with_capacity(pw * ph);
            for row in 0..ph {
                out.extend_from_slice(src.get(row * stride..row * stride + pw)?);
            }
            Some(out)
        };
        Some(Picture {
            width: w,
            height: h,
            y: plane(y, y_stride, w, h)?,
            u: plane(u, u_stride, w / 2, h / 2)?,
            v: plane(v, v_stride, w / 2, h / 2)?,
        })
    }

    /// The colour at (x, y).
    pub fn at(&self, x: usize, y: usize) -> Color {
        let (x, y) = (x.min(self.width - 1), y.min(self.height - 1));
        let c = (y / 2) * (self.width / 2) + x / 2;
        Color {
            y: self.y[y * self.width + x],
            u: self.u[c],
            v: self.v[c],
        }
    }

    /// Paints `rect` (clipped to the picture) with one colour.
    pub fn fill(&mut self, rect: Rect, color: Color) {
        let Some(r) = rect.clip(self.width, self.height) else {
            return;
        };
        for row in r.y..r.y + r.h {
            self.y[row * self.width + r.x..row * self.width + r.x + r.w].fill(color.y);
        }
        let cw = self.width / 2;
        for row in r.y / 2..(r.y + r.h) / 2 {
            self.u[row * cw + r.x / 2..row * cw + (r.x + r.w) / 2].fill(color.u);
            self.v[row * cw + r.x / 2..row * cw + (r.x + r.w) / 2].fill(color.v);
        }
    }

    /// Draws `src` scaled into `rect` (clipped to the picture): copied
    /// when the sizes match, bilinear otherwise.
    pub fn draw(&mut self, src: &Picture, rect: Rect) {
        let Some(r) = rect.clip(self.width, self.height) else {
            return;
        };
        // Clipping keeps the scale of the whole rectangle.
        let (ox, oy) = (r.x - rect.x, r.y - rect.y);
        let dw = self.width;
        scale_plane(
            (&src.y, src.width, src.height),
            (&mut self.y, dw),
            (rect.w, rect.h),
            r,
            (ox, oy),
        );
        let half = |r: Rect| Rect {
            x: r.x / 2,
            y: r.y / 2,
            w: r.w / 2,
            h: r.h / 2,
        };
        let (cr, cfull) = (half(r), (rect.w / 2, rect.h / 2));
        let (cw, ch) = (src.width / 2, src.height / 2);
        scale_plane(
            (&src.u, cw, ch),
            (&mut self.u, dw / 2),
            cfull,
            cr,
            (ox / 2, oy / 2),
        );
        scale_plane(
            (&src.v, cw, ch),
            (&mut self.v, dw / 2),
            cfull,
            cr,
            (ox / 2, oy / 2),
        );
    }
}

fn even(n: usize) -> usize {
    n + (n & 1)
}

/// Scales a `src` plane to a `full` size target and writes the part of it
/// that lands in `area` of `dst` (which starts `offset` into the target).
fn scale_plane(
    (src, sw, sh): (&[u8], usize, usize),
    (dst, dstride): (&mut [u8], usize),
    (fw, fh): (usize, usize),
    area: Rect,
    (ox, oy): (usize, usize),
) {
    if sw == 0 || sh == 0 || fw == 0 || fh == 0 {
        return;
    }
    if (sw, sh) == (fw, fh) {
        for row in 0..area.h {
            let s = (oy + row) * sw + ox;
            let d = (area.y + row) * dstride + area.x;
            dst[d..d + area.w].copy_from_slice(&src[s..s + area.w]);
        }
        return;
    }
    if (sw, sh) == (2 * fw, 2 * fh) {
        // Exactly half size (a 720p input in a quarter of a 720p canvas):
        // the average of each 2x2 block, which is what bilinear gives there.
        for row in 0..area.h {
            let sy = (oy + row) * 2;
            let (r0, r1) = (
                &src[sy * sw..(sy + 1) * sw],
                &src[(sy + 1) * sw..(sy + 2) * sw],
            );
            let d = (area.y + row) * dstride + area.x;
            for (col, out) in dst[d..d + area.w].iter_mut().enumerate() {
                let sx = (ox + col) * 2;
                let sum = u16::from(r0[sx])
                    + u16::from(r0[sx + 1])
                    + u16::from(r1[sx])
                    + u16::from(r1[sx + 1]);
                *out = ((sum + 2) / 4) as u8;
            }
        }
        return;
    }
    // Fixed point, 16 fractional bits; pixel centres aligned. The column
    // taps are worked out once per call, not once per pixel.
    let step_x = ((sw as u64) << 16) / fw as u64;
    let step_y = ((sh as u64) << 16) / fh as u64;
    let (max_x, max_y) = ((sw - 1) as u64, (sh - 1) as u64);
    let taps: Vec<(usize, usize, u32)> = (0..area.w)
        .map(|col| {
            let fx = ((ox + col) as u64 * step_x + step_x / 2).saturating_sub(1 << 15);
            let x0 = (fx >> 16).min(max_x) as usize;
            let x1 = ((fx >> 16) + 1).min(max_x) as usize;
            (x0, x1, ((fx & 0xffff) >> 8) as u32)
        })
        .collect();
    for row in 0..area.h {
        let fy = ((oy + row) as u64 * step_y + step_y / 2).saturating_sub(1 << 15);
        let y0 = (fy >> 16).min(max_y) as usize;
        let y1 = ((fy >> 16) + 1).min(max_y) as usize;
        // 8-bit weights: the sums stay in u32.
        let wy = ((fy & 0xffff) >> 8) as u32;
        let (top, bottom) = (&src[y0 * sw..y0 * sw + sw], &src[y1 * sw..y1 * sw + sw]);
        let d = (area.y + row) * dstride + area.x;
        for (out, &(x0, x1, wx)) in dst[d..d + area.w].iter_mut().zip(&taps) {
            let t = u32::from(top[x0]) * (256 - wx) + u32::from(top[x1]) * wx;
            let b = u32::from(bottom[x0]) * (256 - wx) + u32::from(bottom[x1]) * wx;
            *out = ((t * (256 - wy) + b * wy + (1 << 15)) >> 16) as u8;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colours_round_trip() {
        for (r, g, b) in [
            (255, 0, 0),
            (0, 0, 255),
            (0, 255, 0),
            (255, 255, 255),
            (0, 0, 0),
        ] {
            let (r2, g2, b2) = Color::rgb(r, g, b).to_rgb();
            let near = |a: u8, b: u8| a.abs_diff(b) <= 3;
            assert!(
                near(r, r2) && near(g, g2) && near(b, b2),
                "{r},{g},{b} -> {r2},{g2},{b2}"
            );
        }
    }

    #[test]
    fn drawing_scales_and_clips() {
        let red = Color::rgb(255, 0, 0);
        let blue = Color::rgb(0, 0, 255);
        let mut canvas = Picture::filled(64, 48, Color::BLACK);
        let src = Picture::filled(320, 240, red);
        canvas.draw(
            &src,
            Rect {
                x: 8,
                y: 8,
                w: 16,
                h: 16,
            },
        );
        assert_eq!(canvas.at(8, 8), red);
        assert_eq!(canvas.at(23, 23), red);
        assert_eq!(canvas.at(24, 24), Color::BLACK);
        assert_eq!(canvas.at(7, 8), Color::BLACK);
        // Partly outside: the inside part is drawn, nothing panics.
        canvas.draw(
            &Picture::filled(16, 16, blue),
            Rect {
                x: 56,
                y: 40,
                w: 16,
                h: 16,
            },
        );
        assert_eq!(canvas.at(60, 44), blue);
        // Same size: a plain copy, pixel for pixel.
        let mut gradient = Picture::filled(16, 16, Color::BLACK);
        for (i, p) in gradient.y.iter_mut().enumerate() {
            *p = (i % 251) as u8;
        }
        let mut c2 = Picture::filled(32, 32, Color::BLACK);
        c2.draw(
            &gradient,
            Rect {
                x: 16,
                y: 0,
                w: 16,
                h: 16,
            },
        );
        assert_eq!(c2.at(16 + 5, 3).y, gradient.at(5, 3).y);
        // Half size: a 2x2 average.
        let mut checker = Picture::filled(4, 4, Color::BLACK);
        checker.y.copy_from_slice(&[
            0, 200, 0, 200, 200, 0, 200, 0, 0, 200, 0, 200, 200, 0, 200, 0,
        ]);
        let mut small = Picture::filled(2, 2, Color::BLACK);
        small.draw(
            &checker,
            Rect {
                x: 0,
                y: 0,
                w: 2,
                h: 2,
            },
        );
        assert!(
            small.y.iter().all(|&v| (95..=105).contains(&v)),
            "{:?}",
            small.y
        );
    }

    #[test]
    fn planes_with_strides_are_read() {
        let y: Vec<u8> = (0..8 * 4).map(|i| i as u8).collect();
        let u = vec![1u8; 4 * 2];
        let v = vec![2u8; 4 * 2];
        let p = Picture::from_planes(6, 4, (&y, &u, &v), (8, 4, 4)).unwrap();
        assert_eq!((p.width, p.height), (6, 4));
        assert_eq!(p.y[6], 8, "second row starts at the stride");
        assert!(Picture::from_planes(6, 4, (&y[..10], &u, &v), (8, 4, 4)).is_none());
    }
}
