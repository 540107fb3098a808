//! A mix's layout as the API gives it, and how it maps onto the inputs of
//! the moment: custom rectangles may name the input they are for (a stream,
//! or a room participant's identity), so a participant keeps its place as
//! others come and go.

use costream_hub::StreamKey;
use costream_mixer::Layout;
use serde::{Deserialize, Serialize};

/// `"grid"`, `"speaker"`, `"pip"`, or `{"custom": [cell, ...]}`.
#[derive(Debug, Clone, Deserialize, Serialize, Default, PartialEq)]
#[serde(rename_all = "lowercase")]
pub enum LayoutSpec {
    #[default]
    Grid,
    Speaker,
    Pip,
    Custom(Vec<CustomCell>),
}

/// One rectangle of a custom layout; x, y, w, h are fractions of the
/// canvas, z the drawing order (higher on top).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(untagged)]
pub enum CustomCell {
    /// `[x, y, w, h, z]`: for the next input no cell names.
    InOrder([f64; 5]),
    /// `{"input": "alice", "rect": [x, y, w, h], "z": 1}`: for the input
    /// with that stream key, or the room participant with that identity.
    Named {
        input: String,
        rect: [f64; 4],
        #[serde(default)]
        z: i32,
    },
}

impl LayoutSpec {
    /// The layout for these inputs, in their order.
    pub fn layout(&self, inputs: &[StreamKey]) -> Layout {
        match self {
            LayoutSpec::Grid => Layout::Grid,
            LayoutSpec::Speaker => Layout::Speaker,
            LayoutSpec::Pip => Layout::Pip,
            LayoutSpec::Custom(cells) => {
                let mut in_order = cells.iter().filter_map(|c| match c {
                    CustomCell::InOrder([x, y, w, h, z]) => Some(([*x, *y, *w, *h], *z as i32)),
                    CustomCell::Named { .. } => None,
                });
                let named = |key: &StreamKey| {
                    cells.iter().find_map(|c| match c {
                        CustomCell::Named { input, rect, z } if names(input, key) => {
                            Some((*rect, *z))
                        }
                        _ => None,
                    })
                };
                Layout::Custom(
                    inputs
                        .iter()
                        .map(|key| {
                            named(key)
                                .or_else(|| in_order.next())
                                // No cell left: not shown.
                                .unwrap_or(([0.0; 4], 0))
                        })
                        .collect(),
                )
            }
        }
    }
}

/// Whether `input` (a custom cell's, a gain's) names this stream: its key,
/// or for a room publication (`room.ROOM/IDENTITY`) its participant's identity.
pub(super) fn names(input: &str, key: &StreamKey) -> bool {
    input == key.to_string() || (crate::room::is_room_feed(key) && input == key.stream())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_cells_follow_their_participant() {
        let spec: LayoutSpec = serde_json::from_str(
            r#"{"custom":[{"input":"bob","rect":[0.5,0,0.5,1],"z":1},[0,0,0.5,1,0]]}"#,
        )
        .unwrap();
        let key = |s: &str| StreamKey::parse(s).unwrap();
        let (alice, bob, carol) = (key("room.r/alice"), key("room.r/bob"), key("live/carol"));
        let Layout::Custom(cells) = spec.layout(&[alice.clone(), bob.clone(), carol]) else {
            panic!()
        };
        assert_eq!(
            cells[0],
            ([0.0, 0.0, 0.5, 1.0], 0),
            "alice: the next unnamed cell"
        );
        assert_eq!(cells[1], ([0.5, 0.0, 0.5, 1.0], 1), "bob: his own");
        assert_eq!(cells[2].0, [0.0; 4], "carol: no cell left");
        // Bob keeps his place when alice is gone.
        let Layout::Custom(cells) = spec.layout(&[bob]) else {
            panic!()
        };
        assert_eq!(cells[0], ([0.5, 0.0, 0.5, 1.0], 1));
    }
}
