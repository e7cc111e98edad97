//! A micro-batch: `rows` × `cols` token ids with labels in transformers' convention (−100 =
//! ignored; the model at position t is scored against labels[t + 1]), plus rotary positions and
//! segment ids so that several examples can share a row (packing).
//!
//! Segments are maximal runs of equal ids within a row: a query attends only to earlier keys of
//! its own run, and the last position of a run is never scored against the first label of the
//! next one (so packed examples train exactly like the same examples in rows of their own; the
//! padding after a row's examples is one more run, with labels −100). Token ids and labels are
//! checked against the vocabulary, and positions against the rotary table, when a model runs the
//! batch.

use crate::error::{Error, Result};

/// The label value that is not scored.
pub const IGNORE: i32 = -100;

/// One example: its tokens and their labels (same length; −100 where not scored, e.g. on the
/// prompt for completion-only loss).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sequence {
    pub tokens: Vec<u32>,
    pub labels: Vec<i32>,
}

impl Sequence {
    /// An example scored on every token after the first (labels = tokens).
    pub fn scored(tokens: Vec<u32>) -> Sequence {
        let labels = tokens.iter().map(|&t| t as i32).collect();
        Sequence { tokens, labels }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    rows: usize,
    cols: usize,
    /// [rows, cols]
    tokens: Vec<u32>,
    /// [rows, cols]; −100 = not scored.
    labels: Vec<i32>,
    /// [rows, cols] rotary positions.
    positions: Vec<u32>,
    /// [rows, cols] segment ids (runs of equal ids are segments).
    segments: Vec<u32>,
}

impl Batch {
    /// A batch from flat [rows, cols] tokens and labels; positions 0..cols and one segment per
    /// row (a right-padded batch whose pads carry label −100 needs nothing more: causal attention
    /// keeps real tokens from seeing the pads after them).
    pub fn new(rows: usize, cols: usize, tokens: Vec<u32>, labels: Vec<i32>) -> Result<Batch> {
        if rows == 0 || cols == 0 {
            return Err(Error::batch(format!("empty batch ({rows} rows × {cols} columns)")));
        }
        let n = rows * cols;
        if tokens.len() != n || labels.len() != n {
            return Err(Error::batch(format!(
                "{rows} rows × {cols} columns need {n} tokens and labels; got {} tokens and {} labels",
                tokens.len(),
                labels.len()
            )));
        }
        check_labels(&labels, cols)?;
        let positions = (0..n).map(|i| (i % cols) as u32).collect();
        Ok(Batch { rows, cols, tokens, labels, positions, segments: vec![0; n] })
    }

    /// One example per row, right-padded with `pad` (label −100) to `cols` columns.
    pub fn padded(examples: &[Sequence], cols: usize, pad: u32) -> Result<Batch> {
        let rows: Vec<Vec<Sequence>> = examples.iter().map(|e| vec![e.clone()]).collect();
        Batch::packed(&rows, cols, pad)
    }

    /// Several examples per row, concatenated, each its own segment with positions from 0, and
    /// the rest of the row padded with `pad` (label −100, a segment of its own).
    pub fn packed(rows: &[Vec<Sequence>], cols: usize, pad: u32) -> Result<Batch> {
        let n = rows.len() * cols;
        let (mut tokens, mut labels) = (Vec::with_capacity(n), Vec::with_capacity(n));
        let (mut positions, mut segments) = (Vec::with_capacity(n), Vec::with_capacity(n));
        for (r, row) in rows.iter().enumerate() {
            let used: usize = row.iter().map(|e| e.tokens.len()).sum();
            if used > cols {
                return Err(Error::batch(format!("row {r} holds {used} tokens; the batch has {cols} columns")));
            }
            for (s, e) in row.iter().enumerate() {
                if e.tokens.len() != e.labels.len() {
                    return Err(Error::batch(format!(
                        "row {r}, example {s}: {} tokens but {} labels",
                        e.tokens.len(),
                        e.labels.len()
                    )));
                }
                if e.tokens.is_empty() {
                    return Err(Error::batch(format!("row {r}, example {s} is empty")));
                }
                tokens.extend(&e.tokens);
                labels.extend(&e.labels);
                positions.extend(0..e.tokens.len() as u32);
                segments.extend(std::iter::repeat_n(s as u32, e.tokens.len()));
            }
            let rest = cols - used;
            tokens.extend(std::iter::repeat_n(pad, rest));
            labels.extend(std::iter::repeat_n(IGNORE, rest));
            positions.extend(0..rest as u32);
            segments.extend(std::iter::repeat_n(row.len() as u32, rest));
        }
        let mut b = Batch::new(rows.len(), cols, tokens, labels)?;
        b.positions = positions;
        b.segments = segments;
        Ok(b)
    }

    /// Replace the rotary positions ([rows, cols]).
    pub fn with_positions(mut self, positions: Vec<u32>) -> Result<Batch> {
        self.check_len("positions", positions.len())?;
        self.positions = positions;
        Ok(self)
    }

    /// Replace the segment ids ([rows, cols]; runs of equal ids within a row are segments).
    pub fn with_segments(mut self, segments: Vec<u32>) -> Result<Batch> {
        self.check_len("segment ids", segments.len())?;
        self.segments = segments;
        Ok(self)
    }

    fn check_len(&self, what: &str, len: usize) -> Result<()> {
        if len != self.tokens.len() {
            return Err(Error::batch(format!(
                "{len} {what} for a batch of {} rows × {} columns",
                self.rows, self.cols
            )));
        }
        Ok(())
    }

    pub fn rows(&self) -> usize {
        self.rows
    }
    pub fn cols(&self) -> usize {
        self.cols
    }
    /// [rows, cols]
    pub fn tokens(&self) -> &[u32] {
        &self.tokens
    }
    /// [rows, cols]
    pub fn labels(&self) -> &[i32] {
        &self.labels
    }
    /// [rows, cols]
    pub fn positions(&self) -> &[u32] {
        &self.positions
    }
    /// [rows, cols]
    pub fn segments(&self) -> &[u32] {
        &self.segments
    }

    /// Whether position n (flat index) starts a new segment (or a row).
    fn starts_segment(&self, n: usize) -> bool {
        n.is_multiple_of(self.cols) || self.segments[n] != self.segments[n - 1]
    }

    /// The scored next-token targets: (flat position, label of the next position) for every
    /// position whose next column is in the same segment and has a label other than −100.
    pub(crate) fn targets(&self) -> (Vec<u32>, Vec<u32>) {
        let (mut at, mut label) = (Vec::new(), Vec::new());
        for n in 0..self.tokens.len() {
            let next = n + 1;
            if next % self.cols != 0 && !self.starts_segment(next) && self.labels[next] != IGNORE {
                at.push(n as u32);
                label.push(self.labels[next] as u32);
            }
        }
        (at, label)
    }

    /// How many targets this batch scores: the count to sum over a step's micro-batches and pass
    /// to `TrainModel::forward_backward` (transformers' `num_items_in_batch`).
    pub fn num_targets(&self) -> usize {
        self.targets().0.len()
    }

    /// For each position, the first key column (within its row) it may attend to: the start of
    /// its segment, or of the sliding window when that is later.
    pub(crate) fn first_visible(&self, window: Option<usize>) -> Vec<u32> {
        let mut start = 0;
        (0..self.tokens.len())
            .map(|n| {
                let col = n % self.cols;
                if self.starts_segment(n) {
                    start = col;
                }
                let w = window.map_or(0, |w| (col + 1).saturating_sub(w));
                start.max(w) as u32
            })
            .collect()
    }
}

fn check_labels(labels: &[i32], cols: usize) -> Result<()> {
    match labels.iter().position(|&l| l < 0 && l != IGNORE) {
        Some(i) => Err(Error::batch(format!(
            "label {} at row {}, column {} is negative (use -100 to leave a position unscored)",
            labels[i],
            i / cols,
            i % cols
        ))),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_shifted_and_never_cross_segments() {
        let rows = vec![vec![Sequence::scored(vec![1, 2, 3]), Sequence { tokens: vec![4, 5], labels: vec![-100, 5] }]];
        let b = Batch::packed(&rows, 7, 0).unwrap();
        assert_eq!(b.positions(), &[0, 1, 2, 0, 1, 0, 1]);
        assert_eq!(b.segments(), &[0, 0, 0, 1, 1, 2, 2]);
        let (at, label) = b.targets();
        // 1→2, 2→3; 3 is not scored against 4 (next segment); 4→5.
        assert_eq!(at, vec![0, 1, 3]);
        assert_eq!(label, vec![2, 3, 5]);
        assert_eq!(b.first_visible(None), vec![0, 0, 0, 3, 3, 5, 5]);
        assert_eq!(b.first_visible(Some(2)), vec![0, 0, 1, 3, 3, 5, 5]);
    }

    #[test]
    fn bad_shapes_and_labels_are_named() {
        let e = Batch::new(2, 3, vec![0; 6], vec![0; 5]).unwrap_err().to_string();
        assert!(e.contains("6 tokens and labels; got 6 tokens and 5 labels"), "{e}");
        let e = Batch::new(1, 3, vec![0; 3], vec![0, -7, 1]).unwrap_err().to_string();
        assert!(e.contains("label -7 at row 0, column 1"), "{e}");
        let e = Batch::padded(&[Sequence::scored(vec![1; 5])], 4, 0).unwrap_err().to_string();
        assert!(e.contains("row 0 holds 5 tokens"), "{e}");
        let long = Batch::new(1, 2, vec![0; 2], vec![0; 2]).unwrap();
        assert!(long.with_positions(vec![0; 3]).unwrap_err().to_string().contains("3 positions"));
    }
}
