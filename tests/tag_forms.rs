//! A model's form against its runtime: an int8 model run by tract (slower than its float form on
//! every CPU measured) tags as usual but gets a warning naming the float file; the float model
//! and the built-in one get none.

mod common;

use common::*;
use std::path::Path;

fn model(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("models")
        .join(name)
        .display()
        .to_string()
}

#[test]
fn an_int8_model_on_tract_is_tagged_with_a_warning_naming_its_float_form() {
    let o = tag(&["--model", &model("robust.int8.onnx"), &example("shoes.jpg")]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(
        e.contains("warning") && e.contains("int8") && e.contains(&model("robust.onnx")),
        "{e}"
    );
    for quiet in [vec!["--model".to_string(), model("robust.onnx")], vec![]] {
        let mut args: Vec<&str> = quiet.iter().map(String::as_str).collect();
        let shoes = example("shoes.jpg");
        args.push(&shoes);
        let o = tag(&args);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        assert!(!stderr(&o).contains("warning"), "{}", stderr(&o));
    }
}
