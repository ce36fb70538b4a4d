//! Caption metrics with coco-caption (pycocoevalcap) parity.
pub mod tokenize;
