"""FATE's pipeline SDK (fate_client 2.2.0), unchanged, against a fate-rs node.

Builds PSI + CoordinatedLR + Evaluation and PSI + HeteroSecureBoost + Evaluation for guest 9999,
host 10000, arbiter 10000 (FATE's benchmark_quality parameters), fits them, reads the AUC
through the SDK, deploys and runs a predict pipeline from each trained model. Prints one JSON
line with the results for the Rust test to check. Usage: python vfl_pipelines.py
(after `pipeline init --ip 127.0.0.1 --port P` and uploading experiment.breast_hetero_{guest,host}).
"""
import json

from fate_client.pipeline import FateFlowPipeline
from fate_client.pipeline.components.fate import CoordinatedLR, Evaluation, HeteroSecureBoost, PSI, Reader

GUEST, HOST, ARBITER = "9999", "10000", "10000"


def reader(name):
    r = Reader(name, runtime_parties=dict(guest=GUEST, host=HOST))
    r.guest.task_parameters(namespace="experiment", name="breast_hetero_guest")
    r.hosts[0].task_parameters(namespace="experiment", name="breast_hetero_host")
    return r


def auc_of(pipeline, task="evaluation_0"):
    metrics = pipeline.get_task_info(task).get_output_metric()
    for m in metrics:
        if m.get("name") == "auc":
            data = m.get("data")
            return data["auc"] if isinstance(data, dict) else data
    raise RuntimeError(f"no auc in {metrics}")


def predict_count(pipeline, model_task):
    pipeline.deploy(["psi_0", model_task])
    deployed = pipeline.get_deployed_pipeline()
    predict_pipeline = FateFlowPipeline()
    reader_1 = reader("reader_1")
    deployed.psi_0.input_data = reader_1.outputs["output_data"]
    predict_pipeline.add_tasks([reader_1, deployed])
    predict_pipeline.compile()
    predict_pipeline.predict()
    out = predict_pipeline.get_task_info(model_task).get_output_data()
    frame = next(iter(out.values())) if isinstance(out, dict) else out
    return len(frame)


def lr_pipeline():
    pipeline = FateFlowPipeline().set_parties(guest=GUEST, host=HOST, arbiter=ARBITER)
    reader_0 = reader("reader_0")
    psi_0 = PSI("psi_0", input_data=reader_0.outputs["output_data"])
    lr_0 = CoordinatedLR(
        "lr_0", epochs=20, batch_size=240, early_stop="diff", tol=1e-5,
        optimizer={"method": "rmsprop", "optimizer_params": {"lr": 0.15}, "penalty": "l2", "alpha": 0.01},
        init_param={"fit_intercept": True, "method": "random_uniform", "random_state": 42},
        learning_rate_scheduler={"method": "constant", "scheduler_params": {"factor": 0.5, "total_iters": 5}},
        train_data=psi_0.outputs["output_data"])
    evaluation_0 = Evaluation("evaluation_0", runtime_parties=dict(guest=GUEST), default_eval_setting="binary",
                              metrics=["auc", "ks"], input_datas=[lr_0.outputs["train_output_data"]])
    pipeline.add_tasks([reader_0, psi_0, lr_0, evaluation_0])
    pipeline.compile()
    pipeline.fit()
    return pipeline


def sbt_pipeline():
    pipeline = FateFlowPipeline().set_parties(guest=GUEST, host=HOST)
    reader_0 = reader("reader_0")
    psi_0 = PSI("psi_0", input_data=reader_0.outputs["output_data"])
    sbt_0 = HeteroSecureBoost("sbt_0", num_trees=10, max_bin=32, max_depth=3,
                              he_param={"kind": "paillier", "key_length": 1024},
                              train_data=psi_0.outputs["output_data"])
    evaluation_0 = Evaluation("evaluation_0", runtime_parties=dict(guest=GUEST), metrics=["auc", "ks"],
                              input_datas=[sbt_0.outputs["train_output_data"]])
    pipeline.add_tasks([reader_0, psi_0, sbt_0, evaluation_0])
    pipeline.compile()
    pipeline.fit()
    return pipeline


if __name__ == "__main__":
    result = {}
    lr = lr_pipeline()
    result["lr_auc"] = auc_of(lr)
    # For the flow CLI's model commands in the Rust test (download-model, model export/import).
    result["lr_job_id"] = lr.model_info.job_id
    result["lr_model_id"] = lr.model_info.model_id
    result["lr_model_version"] = str(lr.model_info.model_version)
    result["lr_predict_rows"] = predict_count(lr, "lr_0")
    sbt = sbt_pipeline()
    result["sbt_auc"] = auc_of(sbt)
    result["sbt_predict_rows"] = predict_count(sbt, "sbt_0")
    print("RESULT " + json.dumps(result))
