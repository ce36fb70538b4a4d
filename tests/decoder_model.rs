//! Vocabulary and model directory: build, save/load round trips, clear errors on bad input.
use vidcap::decoder::{Arch, CaptionModel, DecoderConfig, SearchOptions};
use vidcap::features::ClipFeatures;
use vidcap::text::Vocab;

fn config(vocab: usize) -> DecoderConfig {
    DecoderConfig {
        arch: Arch::Attention,
        encoder: "efficientnet-lite0".into(),
        regions: 5,
        feat_dim: 6,
        motion: false,
        hidden: 8,
        embed: 4,
        att_dim: 3,
        vocab_size: vocab,
        max_len: 7,
        dropout: 0.1,
        longest_caption: None,
    }
}

#[test]
fn vocab_counts_words_with_the_metrics_tokenizer_and_applies_min_count() {
    let v = Vocab::build(["A dog runs.", "a DOG sits", "a cat, runs!"], 2);
    // Specials first, then by frequency (ties alphabetical): a(3) dog(2) runs(2).
    let words: Vec<&str> = (0..v.len() as u32).map(|i| v.word(i)).collect();
    assert_eq!(
        words,
        ["<pad>", "<bos>", "<eos>", "<unk>", "a", "dog", "runs"]
    );
    assert_eq!(v.encode("A cat runs"), vec![4, 3, 6]);
    assert_eq!(v.decode(&[1, 4, 5, 6, 2, 5]), "a dog runs");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vocab.json");
    v.save(&path).unwrap();
    assert_eq!(Vocab::load(&path).unwrap(), v);
    std::fs::write(&path, r#"{"words": ["a", "b"], "min_count": 1}"#).unwrap();
    let err = format!("{:#}", Vocab::load(&path).unwrap_err());
    assert!(err.contains("vocab.json") && err.contains("<pad>"), "{err}");
}

#[test]
fn model_directory_round_trips_and_rejects_mismatches() {
    let vocab = Vocab::build(["a dog runs", "a cat sits"], 1);
    let model = CaptionModel::new(config(vocab.len()), vocab, 9).unwrap();
    let dir = tempfile::tempdir().unwrap();
    model.save(dir.path()).unwrap();
    let loaded = CaptionModel::load(dir.path()).unwrap();
    assert_eq!(loaded.config, model.config);
    assert!(loaded.weights() == model.weights());
    let clip = ClipFeatures {
        features: vec![0.5; 2 * 5 * 6],
        frames: 2,
        regions: 5,
        dim: 6,
    };
    let opts = SearchOptions {
        beam: 2,
        max_len: 5,
        length_penalty: 1.0,
        no_repeat_ngram: 0,
    };
    assert_eq!(
        loaded.caption(std::slice::from_ref(&clip), &opts).unwrap(),
        model.caption(&[clip], &opts).unwrap()
    );
    // The GRU tensors carry PyTorch nn.GRU names.
    let bytes = std::fs::read(dir.path().join("model.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    for name in [
        "gru.weight_ih_l0",
        "gru.weight_hh_l0",
        "gru.bias_ih_l0",
        "gru.bias_hh_l0",
    ] {
        assert!(st.tensor(name).is_ok(), "{name}");
    }
    assert_eq!(st.tensor("gru.weight_ih_l0").unwrap().shape(), [24, 4 + 6]);

    // Features of another shape or encoder are refused with the reason.
    let global_only = ClipFeatures {
        features: vec![0.5; 2 * 6],
        frames: 2,
        regions: 1,
        dim: 6,
    };
    let err = format!("{:#}", loaded.caption(&[global_only], &opts).unwrap_err());
    assert!(
        err.contains("[T, 1, 6]") && err.contains("[T, 5, 6]"),
        "{err}"
    );
    let err = format!("{:#}", loaded.expect_encoder("resnet50", 2048).unwrap_err());
    assert!(
        err.contains("efficientnet-lite0") && err.contains("resnet50"),
        "{err}"
    );
    assert!(loaded.expect_encoder("efficientnet-lite0", 6).is_ok());

    // A truncated weights file or a config that disagrees with the weights.
    let wpath = dir.path().join("model.safetensors");
    std::fs::write(&wpath, &bytes[..bytes.len() / 2]).unwrap();
    let err = format!("{:#}", CaptionModel::load(dir.path()).err().unwrap());
    assert!(err.contains("model.safetensors"), "{err}");
    std::fs::write(&wpath, &bytes).unwrap();
    let mut cfg = config(loaded.vocab.len());
    cfg.hidden = 10;
    std::fs::write(
        dir.path().join("config.json"),
        serde_json::to_vec(&cfg).unwrap(),
    )
    .unwrap();
    let err = format!("{:#}", CaptionModel::load(dir.path()).err().unwrap());
    assert!(err.contains("shape"), "{err}");
    std::fs::write(dir.path().join("config.json"), b"{not json").unwrap();
    let err = format!("{:#}", CaptionModel::load(dir.path()).err().unwrap());
    assert!(err.contains("config.json"), "{err}");
}

#[test]
fn gemm_wrapper_matches_a_plain_triple_loop() {
    use vidcap::decoder::linalg::{Update, View, matmul, matmul_reference};
    let (m, k, n) = (37, 53, 29);
    let a: Vec<f64> = (0..m * k)
        .map(|i| ((i * 7 % 13) as f64 - 6.0) / 5.0)
        .collect();
    let b: Vec<f64> = (0..k * n)
        .map(|i| ((i * 5 % 11) as f64 - 5.0) / 3.0)
        .collect();
    let want = matmul_reference(&a, &b, m, k, n);
    let mut got = vec![0.0; m * n];
    matmul(
        &mut got,
        n,
        View::new(&a, m, k),
        View::new(&b, k, n),
        Update::Set,
    );
    assert!(got.iter().zip(&want).all(|(x, y)| (x - y).abs() < 1e-12));
    // Transposed operands: (Aᵀ)ᵀ · (Bᵀ)ᵀ, accumulating onto the result.
    let at: Vec<f64> = (0..k * m).map(|i| a[(i % m) * k + i / m]).collect();
    let bt: Vec<f64> = (0..n * k).map(|i| b[(i % k) * n + i / k]).collect();
    matmul(
        &mut got,
        n,
        View::new(&at, k, m).t(),
        View::new(&bt, n, k).t(),
        Update::Add,
    );
    assert!(
        got.iter()
            .zip(&want)
            .all(|(x, y)| (x - 2.0 * y).abs() < 1e-12)
    );
    // A few rows times a transposed matrix take the dot-product path (decoding).
    let rows = 3;
    let want = matmul_reference(&a[..rows * k], &b, rows, k, n);
    let mut got = vec![0.0; rows * n];
    matmul(
        &mut got,
        n,
        View::new(&a, rows, k),
        View::new(&bt, n, k).t(),
        Update::Set,
    );
    assert!(got.iter().zip(&want).all(|(x, y)| (x - y).abs() < 1e-12));
}
