//! How a command runs its models: threads, device, and how quantized weights meet activations.
//! A spec shared by every model-running command and study section (generate, trace, eval, the
//! in-memory merge/destroy evaluation, the sweeps), recorded in results files by `describe`.

use crate::device::{parse_device, set_threads};
use crate::error::{Error, Result};
use crate::layers::LoadOptions;
use crate::model::Model;
use crate::quant::Activations;
use crate::source::WeightSource;
use crate::tokenizer::Tokenizer;

fn cpu() -> String {
    "cpu".into()
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::Args))]
#[cfg_attr(feature = "cli", command(next_help_heading = "Runtime"))]
#[serde(deny_unknown_fields)]
pub struct RuntimeSpec {
    /// CPU threads (default: all cores).
    #[cfg_attr(feature = "cli", arg(long))]
    #[serde(default)]
    pub threads: Option<usize>,
    /// cpu, cuda or cuda:N.
    #[cfg_attr(feature = "cli", arg(long, default_value = "cpu"))]
    #[serde(default = "cpu")]
    pub device: String,
    /// Quantized weights meet 8-bit activations (llama.cpp's scheme: faster, less exact).
    #[cfg_attr(feature = "cli", arg(long))]
    #[serde(default)]
    pub q8: bool,
    /// Widen quantized weights to f32 at load time.
    #[cfg_attr(feature = "cli", arg(long, conflicts_with = "q8"))]
    #[serde(default)]
    pub dequantize: bool,
}

impl Default for RuntimeSpec {
    fn default() -> Self {
        RuntimeSpec { threads: None, device: cpu(), q8: false, dequantize: false }
    }
}

impl RuntimeSpec {
    /// Fix the thread count (call once, before loading): candle otherwise re-reads the CPU
    /// topology on every matmul.
    pub fn init(&self) -> Result<()> {
        if self.q8 && self.dequantize {
            return Err(Error::input("q8 and dequantize exclude each other"));
        }
        set_threads(self.threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())))
    }

    pub fn load_options(&self) -> Result<LoadOptions> {
        Ok(LoadOptions {
            device: parse_device(&self.device)?,
            dequantize: self.dequantize,
            activations: if self.q8 { Activations::Q8 } else { Activations::F32 },
        })
    }

    /// The model of `src`.
    pub fn load_model(&self, src: &dyn WeightSource) -> Result<Model> {
        Model::load(src, &self.load_options()?).map_err(|e| e.context(format!("loading {}", src.path().display())))
    }

    /// The model of `src` and its tokenizer.
    pub fn load(&self, src: &dyn WeightSource) -> Result<(Model, Tokenizer)> {
        let tok =
            Tokenizer::for_source(src).map_err(|e| e.context(format!("tokenizer of {}", src.path().display())))?;
        Ok((self.load_model(src)?, tok))
    }

    /// How the model runs, for result files.
    pub fn describe(&self) -> serde_json::Value {
        serde_json::json!({
            "device": self.device,
            "activations": if self.q8 { "q8" } else { "f32" },
            "dequantize": self.dequantize,
        })
    }
}
