//! The model being trained as a `WeightSource`, so sfn-model can build its inference model from
//! the current weights (evaluation during training, the lab's in-memory variants) without writing
//! a checkpoint. Tokenizer files and GGUF metadata come from the source the model was loaded from.

use crate::model::TrainModel;
use sfn_checkpoint::gguf::Value;
use sfn_checkpoint::ModelConfig;
use sfn_model::WeightSource;
use std::collections::BTreeMap;
use std::path::Path;

/// `model`'s current weights, with `base` (what it was loaded from) for everything else.
pub struct TrainedWeights<'a> {
    pub model: &'a TrainModel,
    pub base: &'a dyn WeightSource,
}

impl WeightSource for TrainedWeights<'_> {
    fn config(&self) -> sfn_model::Result<ModelConfig> {
        Ok(self.model.config().clone())
    }

    fn shape(&self, name: &str) -> Option<Vec<usize>> {
        self.model.param(name).map(|p| p.shape.to_vec())
    }

    fn load_f32(&self, name: &str) -> sfn_model::Result<Vec<f32>> {
        let p = self.model.param(name).ok_or_else(|| {
            sfn_model::Error::Checkpoint(sfn_checkpoint::Error::tensor(name, "not a parameter of the trained model"))
        })?;
        Ok(p.data.to_vec())
    }

    fn gguf_metadata(&self) -> Option<&BTreeMap<String, Value>> {
        self.base.gguf_metadata()
    }

    fn path(&self) -> &Path {
        self.base.path()
    }
}
