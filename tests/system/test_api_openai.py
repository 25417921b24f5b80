"""The official openai Python package drives ft-api with only base_url
changed: upload, supervised and dpo jobs, list, retrieve, page through events,
cancel. Nothing is patched."""
import hashlib

import openai
import pytest

from api_helpers import DPO_LINES, SFT_LINES, jsonl, register_tiny_model, wait_status


@pytest.fixture(scope="module")
def oai(api_server, tmp_path_factory):
    register_tiny_model(api_server, tmp_path_factory.mktemp("models"))
    return openai.OpenAI(api_key=api_server.key, base_url=api_server.url + "/v1", max_retries=0)


def test_upload_and_read_back(oai, tmp_path):
    data = jsonl(SFT_LINES)
    p = tmp_path / "train.jsonl"
    p.write_bytes(data)
    with open(p, "rb") as f:
        fobj = oai.files.create(file=f, purpose="fine-tune")
    assert fobj.id.startswith("file-") and fobj.object == "file"
    assert fobj.bytes == len(data) and fobj.filename == "train.jsonl"
    assert fobj.purpose == "fine-tune"
    assert oai.files.retrieve(fobj.id).bytes == len(data)
    assert oai.files.content(fobj.id).read() == data
    assert fobj.id in [f.id for f in oai.files.list()]
    # The store holds it under its SHA-256, as hashlib computes it.
    assert fobj.model_extra["sha256"] == hashlib.sha256(data).hexdigest()


def test_supervised_and_dpo_jobs(oai, api_server):
    sft = oai.files.create(file=("sft.jsonl", jsonl(SFT_LINES)), purpose="fine-tune")
    dpo = oai.files.create(file=("dpo.jsonl", jsonl(DPO_LINES)), purpose="fine-tune")
    j1 = oai.fine_tuning.jobs.create(model="tiny-llama", training_file=sft.id, suffix="mine", seed=7,
                                     hyperparameters={"n_epochs": 2}, metadata={"run": "a"})
    assert j1.status == "validating_files" and j1.model == "tiny-llama"
    assert j1.seed == 7 and j1.user_provided_suffix == "mine" and j1.metadata == {"run": "a"}
    assert j1.hyperparameters.n_epochs == 2 and j1.method.type == "supervised"
    j2 = oai.fine_tuning.jobs.create(
        model="tiny-llama", training_file=dpo.id,
        method={"type": "dpo", "dpo": {"hyperparameters": {"beta": 0.2}}},
        extra_body={"adapter": "qlora", "lora": {"r": 8, "layers_to_transform": [1, 0, 1]},
                    "gpus": 1, "priority": 5})
    assert j2.method.type == "dpo" and j2.method.dpo.hyperparameters.beta == 0.2
    assert j2.model_extra["adapter"] == "qlora" and j2.model_extra["lora"]["r"] == 8
    assert j2.model_extra["lora"]["layers_to_transform"] == [0, 1]  # normalised: sorted, each once
    # a layer tiny-llama (2 layers) does not have: refused at creation, named
    with pytest.raises(openai.BadRequestError) as e:
        oai.fine_tuning.jobs.create(model="tiny-llama", training_file=sft.id,
                                    extra_body={"lora": {"layers_to_transform": [1, 2]}})
    assert e.value.body["param"] == "lora.layers_to_transform"
    assert e.value.body["message"] == ('"layers_to_transform" names layer 2, but the model\'s '
                                       'layers are 0 to 1')
    assert j2.model_extra["gpus"] == 1 and j2.model_extra["priority"] == 5

    # The validator moves both to queued.
    for j in (j1, j2):
        assert wait_status(api_server, j.id, {"queued"})["id"] == j.id
        assert oai.fine_tuning.jobs.retrieve(j.id).status == "queued"
    listed = oai.fine_tuning.jobs.list(limit=1)
    assert len(listed.data) == 1 and listed.has_more
    ids = [j.id for j in oai.fine_tuning.jobs.list(limit=1)]  # auto-pages with ?after=
    assert ids[:2] == [j2.id, j1.id]
    # our hyperparameters beside OpenAI's, shown under the method as given
    ours = {"max_seq_length": 512, "gradient_checkpointing": 2,
            "lr_scheduler_type": "cosine", "warmup_ratio": 0.1, "label_smoothing": 0.1}
    j3 = oai.fine_tuning.jobs.create(
        model="tiny-llama", training_file=dpo.id,
        method={"type": "dpo", "dpo": {"hyperparameters": {"beta": 0.3, **ours}}})
    got = j3.method.dpo.hyperparameters.model_dump()
    assert got["beta"] == 0.3 and {k: got[k] for k in ours} == ours
    oai.fine_tuning.jobs.cancel(j3.id)


def test_events_page_and_cancel(oai, api_server):
    f = oai.files.create(file=("sft.jsonl", jsonl(SFT_LINES)), purpose="fine-tune")
    j = oai.fine_tuning.jobs.create(model="tiny-llama", training_file=f.id)
    wait_status(api_server, j.id, {"queued"})
    cancelled = oai.fine_tuning.jobs.cancel(j.id)
    assert cancelled.status == "cancelled" and cancelled.finished_at is not None
    # created, validating, validated, cancelled: four events, newest first,
    # read one per page through the SDK's cursor pagination.
    page = oai.fine_tuning.jobs.list_events(j.id, limit=1)
    assert len(page.data) == 1 and page.has_more
    msgs = [e.message for e in oai.fine_tuning.jobs.list_events(j.id, limit=1)]
    assert msgs == ["Job cancelled", "Files validated, moving job to queued state",
                    f"Validating training file: {f.id}", f"Created fine-tuning job: {j.id}"]
    assert oai.fine_tuning.jobs.checkpoints.list(j.id).data == []
    with pytest.raises(openai.ConflictError):
        oai.fine_tuning.jobs.cancel(j.id)


def test_pause_resume_and_cancel_a_queued_job(oai, api_server):
    """No worker here: a queued job pauses at once (nothing to stop), resumes
    to queued, pauses again and is cancelled from paused. The SDK's own
    pause() and resume() (OpenAI's routes) read the statuses; each move is an
    event; what a state does not allow is a 409 naming the state. (A running
    job: test_dispatch_e2e.py.)"""
    f = oai.files.create(file=("sft.jsonl", jsonl(SFT_LINES)), purpose="fine-tune")
    j = oai.fine_tuning.jobs.create(model="tiny-llama", training_file=f.id)
    wait_status(api_server, j.id, {"queued"})
    with pytest.raises(openai.ConflictError) as e:
        oai.fine_tuning.jobs.resume(j.id)
    assert e.value.body["code"] == "job_not_resumable"
    assert e.value.body["message"] == f'job "{j.id}" is not paused (it is queued)'
    p = oai.fine_tuning.jobs.pause(j.id)
    assert p.status == "paused" and p.finished_at is None and p.model_extra["state"] == "paused"
    assert oai.fine_tuning.jobs.pause(j.id).status == "paused"          # again: stays
    r = oai.fine_tuning.jobs.resume(j.id)
    assert r.status == "queued" and r.model_extra["state"] == "queued"
    assert oai.fine_tuning.jobs.pause(j.id).status == "paused"
    c = oai.fine_tuning.jobs.cancel(j.id)
    assert c.status == "cancelled" and c.finished_at is not None
    for act in (oai.fine_tuning.jobs.pause, oai.fine_tuning.jobs.resume):
        with pytest.raises(openai.ConflictError) as e:
            act(j.id)
        assert e.value.body["message"] == f'job "{j.id}" has already cancelled'
    msgs = [e.message for e in oai.fine_tuning.jobs.list_events(j.id, limit=10)]
    assert msgs[:4] == ["Job cancelled", "Job paused",
                        "Job resumed: queued again; it starts from its last checkpoint",
                        "Job paused"]
    with pytest.raises(openai.NotFoundError):
        oai.fine_tuning.jobs.pause("ftjob-" + "A" * 24)


def test_list_jobs_filtered_by_metadata(oai, api_server):
    """The client's list(metadata={...}) sends metadata[KEY]=VALUE: only jobs
    holding every pair come back (paged as usual); metadata=null lists the
    jobs without metadata; a malformed filter is a 400 naming "metadata"."""
    f = oai.files.create(file=("sft.jsonl", jsonl(SFT_LINES)), purpose="fine-tune")
    a = oai.fine_tuning.jobs.create(model="tiny-llama", training_file=f.id,
                                    metadata={"run": "meta-1", "team": "x"}).id
    b = oai.fine_tuning.jobs.create(model="tiny-llama", training_file=f.id,
                                    metadata={"run": "meta-2"}).id
    c = oai.fine_tuning.jobs.create(model="tiny-llama", training_file=f.id).id

    def ids(**kw):
        return [j.id for j in oai.fine_tuning.jobs.list(limit=1, **kw)]   # pages of one

    assert ids(metadata={"run": "meta-1"}) == [a]
    assert ids(metadata={"run": "meta-1", "team": "x"}) == [a]
    assert ids(metadata={"run": "meta-2"}) == [b]
    assert ids(metadata={"team": "y"}) == []
    nulls = ids(extra_query={"metadata": "null"})
    assert c in nulls and a not in nulls and b not in nulls
    for q in ({"metadata": "x"}, {"metadata[]": "x"}, {"metadata[" + "k" * 65 + "]": "x"},
              {"metadata": "null", "metadata[run]": "meta-1"}):
        with pytest.raises(openai.BadRequestError) as e:
            oai.fine_tuning.jobs.list(extra_query=q)
        assert e.value.body["param"] == "metadata", q
    for j in (a, b, c):
        oai.fine_tuning.jobs.cancel(j)


def test_errors_come_back_as_sdk_exceptions(oai):
    with pytest.raises(openai.NotFoundError):
        oai.fine_tuning.jobs.retrieve("ftjob-" + "A" * 24)
    with pytest.raises(openai.BadRequestError) as e:
        oai.fine_tuning.jobs.create(model="no-such-model", training_file="file-" + "B" * 24)
    assert e.value.body["param"] == "model" and e.value.body["code"] == "model_not_found"
    bad = openai.OpenAI(api_key="ftk-" + "x" * 44, base_url=oai.base_url, max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        bad.files.list()


def test_models_and_file_delete_through_the_sdk(oai):
    assert "tiny-llama" in [m.id for m in oai.models.list()]
    m = oai.models.retrieve("tiny-llama")
    assert m.id == "tiny-llama" and m.object == "model"
    assert m.model_extra["architecture"] == "LlamaForCausalLM"
    f = oai.files.create(file=("gone.jsonl", jsonl(SFT_LINES)), purpose="fine-tune")
    d = oai.files.delete(f.id)
    assert d.id == f.id and d.deleted is True
    with pytest.raises(openai.NotFoundError):
        oai.files.retrieve(f.id)


def test_checkpoints_written_by_the_scheduler_read_through_the_sdk(oai, api_server):
    import psycopg
    f = oai.files.create(file=("c.jsonl", jsonl(SFT_LINES)), purpose="fine-tune")
    j = oai.fine_tuning.jobs.create(model="tiny-llama", training_file=f.id, suffix="ck")
    with psycopg.connect(api_server.db_url, autocommit=True) as db:
        for i, step in enumerate((10, 20)):
            art, ck = f"art-{'A' * 23}{i}", f"ftckpt-{'K' * 23}{i}"
            db.execute("INSERT INTO artifacts (id, team_id, kind, sha256, bytes, storage_key) "
                       "VALUES (%s, %s, 'checkpoint', repeat('0', 64), 1, 'sha256/00/x')", (art, api_server.team))
            db.execute("INSERT INTO checkpoints (id, job_id, attempt, step, artifact_id, metrics, created_at) "
                       "VALUES (%s, %s, 0, %s, %s, %s, now() + %s * interval '1 second')",
                       (ck, j.id, step, art, '{"train_loss": 1.5}', i))
    page = oai.fine_tuning.jobs.checkpoints.list(j.id, limit=1)
    assert len(page.data) == 1 and page.has_more
    cks = list(oai.fine_tuning.jobs.checkpoints.list(j.id, limit=1))
    assert [c.step_number for c in cks] == [20, 10]
    assert cks[0].metrics.train_loss == 1.5 and cks[0].metrics.step == 20
    assert cks[0].fine_tuning_job_id == j.id
    # the job's fine-tuned model's name and the step (ft/modelref.h): unique per
    # job, so that GET /v1/models/{name} finds it
    assert cks[0].fine_tuned_model_checkpoint == f"ft:tiny-llama:{j.id}:ckpt-step-20"
