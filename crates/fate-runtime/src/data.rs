//! The dataframe every data-consuming component works on: a table from sample id to a row of
//! match id, optional label and weight, and dense features, with the schema that names them
//! (FATE 2.x DataFrame with its sample_id / match_id / label / weight blocks, fate-spec §3.4
//! upload meta).

use fate_computing::{ComputingError, Table};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Row {
    pub match_id: String,
    pub label: Option<f64>,
    pub weight: Option<f64>,
    pub features: Vec<f64>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Schema {
    pub sample_id_name: String,
    pub match_id_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight_name: Option<String>,
    pub feature_names: Vec<String>,
    #[serde(default)]
    pub label_type: String,
    #[serde(default)]
    pub dtype: String,
    /// A prediction frame's data set (FATE's `type` column: [`predict::TRAIN_SET`],
    /// [`predict::VALIDATE_SET`] or [`predict::TEST_SET`]); `None` for other frames.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataset_type: Option<String>,
}

/// A schema plus the table of rows keyed by sample id.
#[derive(Clone)]
pub struct DataFrame {
    pub schema: Schema,
    pub table: Table<String, Row>,
}

impl DataFrame {
    pub fn count(&self) -> Result<usize, ComputingError> {
        self.table.count()
    }
}

/// Column names of a prediction dataframe, as FATE 2.x names them. A component that predicts
/// (coordinated_lr, hetero_secureboost, ...) outputs a [`DataFrame`] whose rows keep the true
/// `label` and whose features are, in this order, `predict_score` (the positive-class
/// probability for binary tasks, the predicted value for regression), `predict_result` (the
/// predicted class or value) and, for multi-class tasks, one `predict_detail_<class>`
/// probability per class. `evaluation` reads these columns by name.
pub mod predict {
    pub const SCORE: &str = "predict_score";
    pub const RESULT: &str = "predict_result";
    pub const DETAIL_PREFIX: &str = "predict_detail_";
    /// FATE's data set names (`fate/ml/utils/predict_tools.py`): the `type` column of a
    /// prediction and the keys under which `evaluation` reports each set.
    pub const TRAIN_SET: &str = "train_set";
    pub const VALIDATE_SET: &str = "validate_set";
    pub const TEST_SET: &str = "test_set";
}

impl Schema {
    /// Index of a feature column by name.
    pub fn column(&self, name: &str) -> Option<usize> {
        self.feature_names.iter().position(|n| n == name)
    }
}
