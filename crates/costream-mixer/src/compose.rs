//! One composite picture from the inputs' latest pictures.

use crate::layout::{Layout, Placement};
use crate::picture::{Color, Picture};

/// Draws the inputs on a canvas of a fixed size. An input with no picture
/// yet (or no video) is a plain tile.
pub struct Compositor {
    canvas: Picture,
    pub background: Color,
    pub tile: Color,
    /// Letterbox inputs into their cells (keep their aspect) rather than
    /// stretch them.
    pub keep_aspect: bool,
}

impl Compositor {
    pub fn new(width: usize, height: usize) -> Compositor {
        Compositor {
            canvas: Picture::filled(width, height, Color::BLACK),
            background: Color::BLACK,
            tile: Color::rgb(48, 48, 56),
            keep_aspect: true,
        }
    }

    pub fn width(&self) -> usize {
        self.canvas.width
    }

    pub fn height(&self) -> usize {
        self.canvas.height
    }

    /// The composite of `inputs` (in the layout's order) placed by `layout`.
    pub fn compose(&mut self, layout: &Layout, inputs: &[Option<&Picture>]) -> &Picture {
        let (w, h) = (self.canvas.width, self.canvas.height);
        let placements = layout.place(inputs.len(), w, h);
        self.draw(&placements, inputs);
        &self.canvas
    }

    fn draw(&mut self, placements: &[Placement], inputs: &[Option<&Picture>]) {
        let whole = crate::layout::Rect {
            x: 0,
            y: 0,
            w: self.canvas.width,
            h: self.canvas.height,
        };
        self.canvas.fill(whole, self.background);
        for p in placements {
            match inputs.get(p.input).copied().flatten() {
                Some(pic) => {
                    let rect = if self.keep_aspect {
                        p.rect.fit(pic.width as f64 / pic.height.max(1) as f64)
                    } else {
                        p.rect
                    };
                    self.canvas.fill(p.rect, self.background);
                    self.canvas.draw(pic, rect);
                }
                None => self.canvas.fill(p.rect, self.tile),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inputs_land_in_their_cells_and_move_with_the_layout() {
        let red = Color::rgb(255, 0, 0);
        let blue = Color::rgb(0, 0, 255);
        let a = Picture::filled(640, 360, red);
        let b = Picture::filled(640, 360, blue);
        let mut c = Compositor::new(1280, 720);
        let out = c.compose(&Layout::Grid, &[Some(&a), Some(&b)]);
        assert_eq!(out.at(320, 360), red);
        assert_eq!(out.at(960, 360), blue);
        // Letterboxed: above a 16:9 picture in a 640x720 cell is background.
        assert_eq!(out.at(320, 100), Color::BLACK);
        let out = c.compose(&Layout::Pip, &[Some(&b), Some(&a)]);
        assert_eq!(out.at(100, 100), blue, "the host fills the canvas");
        assert_eq!(
            out.at(1280 - 180, 720 - 110),
            red,
            "the guest sits bottom right"
        );
        // An input without a picture is a plain tile.
        let out = c.compose(&Layout::Grid, &[Some(&a), None]);
        assert_eq!(out.at(960, 360), c.tile);
    }
}
