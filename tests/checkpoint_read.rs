//! Both checkpoint formats against values torch recorded (scripts/make_checkpoints.py).
mod util;

use candle_core::{DType, Device};
use serde_json::Value;
use vidcap::checkpoint::{
    CheckpointFormat, CheckpointTensor, detect_format, read_checkpoint, read_checkpoint_tensors,
};

fn values(t: &CheckpointTensor) -> Vec<f64> {
    let tensor = t.to_tensor(&Device::Cpu).unwrap();
    let tensor = match t.dtype {
        // candle converts these to f64 directly; the integer types go through i64 / f32.
        DType::F32 | DType::F64 | DType::F16 | DType::BF16 | DType::U8 | DType::I64 => tensor,
        DType::I32 | DType::I16 => tensor.to_dtype(DType::I64).unwrap(),
        other => panic!("unexpected dtype {other:?}"),
    };
    tensor
        .to_dtype(DType::F64)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f64>()
        .unwrap()
}

fn dtype_name(d: DType) -> &'static str {
    match d {
        DType::F32 => "float32",
        DType::F64 => "float64",
        DType::F16 => "float16",
        DType::BF16 => "bfloat16",
        DType::I64 => "int64",
        DType::I32 => "int32",
        DType::U8 => "uint8",
        _ => "other",
    }
}

/// Equal up to serde_json's decimal parsing, which may be one f64 ulp off (that is still
/// bit-exact for the f32/f16 values stored).
fn assert_same_values(got: &[f64], want: &[f64], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: element count");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= 4.0 * f64::EPSILON * w.abs(),
            "{what}: element {i}: {g} != {w}"
        );
    }
}

fn check_against_expected(file: &str, prefix: &str) {
    let expected: Vec<Value> = serde_json::from_str(
        &std::fs::read_to_string(util::checkpoint::fixture("tiny_expected.json")).unwrap(),
    )
    .unwrap();
    let tensors = read_checkpoint_tensors(&util::checkpoint::fixture(file)).unwrap();
    let names: Vec<&str> = tensors.iter().map(|t| t.name.as_str()).collect();
    let want: Vec<String> = expected
        .iter()
        .map(|e| format!("{prefix}{}", e["name"].as_str().unwrap()))
        .collect();
    assert_eq!(names, want, "{file}: names and order");
    for (t, e) in tensors.iter().zip(&expected) {
        let shape: Vec<usize> = serde_json::from_value(e["shape"].clone()).unwrap();
        assert_eq!(t.shape, shape, "{file}: {} shape", t.name);
        let dtype = e["dtype"].as_str().unwrap();
        // torch bool is read as 0/1 bytes.
        let want_dtype = if dtype == "bool" { "uint8" } else { dtype };
        assert_eq!(dtype_name(t.dtype), want_dtype, "{file}: {} dtype", t.name);
        let want: Vec<f64> = serde_json::from_value(e["values"].clone()).unwrap();
        assert_same_values(&values(t), &want, &format!("{file}: {}", t.name));
    }
}

#[test]
fn zip_format_matches_torch() {
    check_against_expected("tiny_zip.pt", "");
}

#[test]
fn legacy_format_matches_torch() {
    check_against_expected("tiny_legacy.pt", "");
}

#[test]
fn nested_state_dict_is_flattened_and_non_tensors_skipped() {
    check_against_expected("nested_zip.pt", "state_dict.");
}

#[test]
fn format_is_detected_by_content() {
    let zip = std::fs::read(util::checkpoint::fixture("tiny_zip.pt")).unwrap();
    let legacy = std::fs::read(util::checkpoint::fixture("tiny_legacy.pt")).unwrap();
    assert_eq!(detect_format(&zip), Ok(CheckpointFormat::Zip));
    assert_eq!(detect_format(&legacy), Ok(CheckpointFormat::Legacy));
    // Same file under a misleading name still reads.
    let dir = tempfile::tempdir().unwrap();
    let renamed = dir.path().join("weights.safetensors");
    std::fs::write(&renamed, &legacy).unwrap();
    assert_eq!(read_checkpoint(&renamed).unwrap().len(), 15);
}

#[test]
fn read_checkpoint_gives_candle_tensors() {
    let tensors = read_checkpoint(&util::checkpoint::fixture("tiny_legacy.pt")).unwrap();
    let (name, t) = &tensors[5];
    assert_eq!(name, "fc.weight_t");
    // torch.arange(15).reshape(5, 3).t(): row i of the transpose is column i.
    assert_eq!(
        t.to_vec2::<f32>().unwrap(),
        vec![
            vec![0., 3., 6., 9., 12.],
            vec![1., 4., 7., 10., 13.],
            vec![2., 5., 8., 11., 14.]
        ]
    );
}

/// The real EfficientNet-Lite0 file (legacy format) against sums torch computed from it.
#[test]
fn real_efficientnet_lite0_checkpoint_matches_torch_summary() {
    let Some(pth) = util::checkpoint::real_checkpoint() else {
        return;
    };
    let summary: Vec<Value> = serde_json::from_str(
        &std::fs::read_to_string(util::checkpoint::fixture("efficientnet_lite0_summary.json"))
            .unwrap(),
    )
    .unwrap();
    let tensors = read_checkpoint_tensors(&pth).unwrap();
    assert_eq!(tensors.len(), summary.len());
    for (t, s) in tensors.iter().zip(&summary) {
        let name = s["name"].as_str().unwrap();
        assert_eq!(t.name, name);
        let shape: Vec<usize> = serde_json::from_value(s["shape"].clone()).unwrap();
        assert_eq!(t.shape, shape, "{name}");
        let v = values(t);
        let first: Vec<f64> = serde_json::from_value(s["first"].clone()).unwrap();
        assert_same_values(&v[..first.len()], &first, name);
        let sum: f64 = v.iter().sum();
        let abs_sum: f64 = v.iter().map(|x| x.abs()).sum();
        let tol = 1e-9 * s["abs_sum"].as_f64().unwrap().max(1.0);
        assert!(
            (sum - s["sum"].as_f64().unwrap()).abs() <= tol,
            "{name}: sum {sum}"
        );
        assert!(
            (abs_sum - s["abs_sum"].as_f64().unwrap()).abs() <= tol,
            "{name}: abs sum {abs_sum}"
        );
    }
}

#[test]
fn parameters_read_as_their_data() {
    for file in ["params_zip.pt", "params_legacy.pt"] {
        let tensors = read_checkpoint(&util::checkpoint::fixture(file)).unwrap();
        assert_eq!(tensors.len(), 1, "{file}");
        assert_eq!(tensors[0].0, "p");
        assert_eq!(
            tensors[0].1.to_vec2::<f32>().unwrap(),
            vec![vec![0., 1., 2.], vec![3., 4., 5.]],
            "{file}"
        );
    }
}

/// A dict referenced twice is pickled once and fetched from the memo the second time; both
/// references must see it filled.
#[test]
fn a_dict_shared_by_two_keys_is_read_under_both() {
    let tensors = read_checkpoint(&util::checkpoint::fixture("shared_dict_zip.pt")).unwrap();
    let names: Vec<&str> = tensors.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["model.w", "ema.w"]);
    for (_, t) in &tensors {
        assert_eq!(t.to_vec1::<f32>().unwrap(), vec![0., 1., 2.]);
    }
}
