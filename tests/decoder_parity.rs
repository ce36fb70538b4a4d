//! The decoder against PyTorch: nn.GRU one step and a sequence (through the inference step
//! used by search), and the whole model's loss and gradients (through the training pass).
//! Reference values: scripts/gru_reference.py, run once with torch; output committed.
use serde_json::Value;
use vidcap::decoder::bptt::{Batch, PassOptions, loss_and_grad};
use vidcap::decoder::params::{Dims, Weights, layout};
use vidcap::decoder::step::{ClipMemory, Decoder, Prepared};
use vidcap::features::ClipFeatures;

fn reference() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/decoder/gru_reference.json"
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

fn close(a: &[f64], b: &[f64], tol: f64, what: &str) {
    assert_eq!(a.len(), b.len(), "{what}: length");
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!(
            (x - y).abs() <= tol * (1.0 + y.abs()),
            "{what}[{i}]: {x} vs torch {y}"
        );
    }
}

#[test]
fn gru_step_and_sequence_match_torch_nn_gru() {
    let r = &reference()["gru"];
    let n = |k: &str| r[k].as_u64().unwrap() as usize;
    let (input, hidden, batch, len) = (n("input_size"), n("hidden"), n("batch"), n("len"));
    // The GRU input rows become embedding rows, so the search step feeds them verbatim.
    let x = floats(&r["x"]);
    let d = Dims {
        vocab: len * batch,
        embed: input,
        hidden,
        feat: 1,
        regions: 1,
        att: 0,
        attention: false,
    };
    let mut w: Weights<f32> = Weights::zeros(&d);
    let f32s = |v: Vec<f64>| v.into_iter().map(|x| x as f32).collect::<Vec<f32>>();
    w.embed = f32s(x);
    w.w_ih = f32s(floats(&r["weights"]["weight_ih_l0"]));
    w.w_hh = f32s(floats(&r["weights"]["weight_hh_l0"]));
    w.b_ih = f32s(floats(&r["weights"]["bias_ih_l0"]));
    w.b_hh = f32s(floats(&r["weights"]["bias_hh_l0"]));
    let clip = ClipFeatures {
        features: vec![0.0],
        frames: 1,
        regions: 1,
        dim: 1,
    };
    let mems = [ClipMemory::new(&w, &d, &clip)];
    let prepared = Prepared::new(&w, &d);
    let decoder = Decoder {
        w: &w,
        d,
        prepared: &prepared,
    };
    let mut states = decoder.states(&f32s(floats(&r["h0"])));
    let mut outputs = vec![];
    for t in 0..len {
        let tokens: Vec<u32> = (0..batch).map(|b| (t * batch + b) as u32).collect();
        (states, _) = decoder.step(&mems, &vec![0; batch], &states, &tokens, 1);
        for state in states.chunks_exact(decoder.state_width()) {
            outputs.extend(decoder.hidden(state).iter().map(|&v| v as f64));
        }
        if t == 0 {
            close(&outputs, &floats(&r["step1"]), 1e-5, "one step");
        }
    }
    close(&outputs, &floats(&r["sequence"]), 1e-5, "sequence");
}

fn model_case(arch: &str) {
    let r = &reference()[arch];
    let n = |k: &str| r["dims"][k].as_u64().unwrap() as usize;
    let d = Dims {
        vocab: n("vocab"),
        embed: n("embed"),
        hidden: n("hidden"),
        feat: n("feat"),
        regions: n("regions"),
        att: n("att"),
        attention: arch == "attention",
    };
    let (bsz, len) = (n("batch"), n("len"));
    let mut w: Weights<f64> = Weights::zeros(&d);
    for ((name, _), t) in layout(&d).iter().zip(w.tensors_mut()) {
        if !t.is_empty() {
            *t = floats(&r["weights"][*name]);
        }
    }
    let feats = floats(&r["feats"]);
    let per_clip = feats.len() / bsz;
    let ids = |k: &str| -> Vec<u32> {
        r[k].as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap() as u32)
            .collect()
    };
    let (tokens_in, targets) = (ids("tokens_in"), ids("targets"));
    let batch = Batch {
        clips: feats.chunks(per_clip).collect(),
        tokens_in: &tokens_in,
        targets: &targets,
        len,
    };
    let opts = PassOptions {
        label_smoothing: r["label_smoothing"].as_f64().unwrap(),
        ..Default::default()
    };
    let mut g = Weights::zeros(&d);
    let loss = loss_and_grad(&w, &d, &batch, &opts, Some(&mut g));
    close(&[loss], &[r["loss"].as_f64().unwrap()], 1e-10, "loss (f64)");
    for ((name, _), t) in layout(&d).iter().zip(g.tensors()) {
        if !t.is_empty() {
            close(t, &floats(&r["grads"][*name]), 1e-9, name);
        }
    }
    // The f32 training path agrees to f32 precision.
    let w32: Weights<f32> = w.cast();
    let feats32: Vec<f32> = feats.iter().map(|&x| x as f32).collect();
    let batch32 = Batch {
        clips: feats32.chunks(per_clip).collect(),
        tokens_in: &tokens_in,
        targets: &targets,
        len,
    };
    let loss32 = loss_and_grad(&w32, &d, &batch32, &opts, None);
    close(
        &[loss32 as f64],
        &[r["loss"].as_f64().unwrap()],
        1e-5,
        "loss (f32)",
    );
}

#[test]
fn meanpool_model_loss_and_gradients_match_torch_autograd() {
    model_case("meanpool");
}

#[test]
fn attention_model_loss_and_gradients_match_torch_autograd() {
    model_case("attention");
}
