"""infra/template.yaml is generated from pipelines.yaml, up to date, valid for cfn-lint, carries exactly
the configured event-source-mapping settings, holds no local secret value and gives each function only
the resources it needs.

The expectations here are written from pipelines.yaml and the handlers' behaviour, not from
processors/runtime/sam.py, so a mistake in the generator is not mirrored by the test."""

from __future__ import annotations

import math
import re
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import yaml

from processors.config import load
from processors.config.models import Config
from processors.runtime.sam import render_template, schedule_rate

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "infra" / "template.yaml"
CONFIG = ROOT / "pipelines.yaml"

#: pipelines.yaml event-source field -> the CloudFormation/SAM property Lambda's ESM takes
ESM = {
    "batch_size": "BatchSize",
    "maximum_batching_window_seconds": "MaximumBatchingWindowInSeconds",
    "starting_position": "StartingPosition",
    "function_response_types": "FunctionResponseTypes",
    "bisect_batch_on_function_error": "BisectBatchOnFunctionError",
    "maximum_retry_attempts": "MaximumRetryAttempts",
    "maximum_record_age_seconds": "MaximumRecordAgeInSeconds",
    "tumbling_window_seconds": "TumblingWindowInSeconds",
}
PHYSICAL_NAME = {
    "AWS::Kinesis::Stream": "Name", "AWS::DynamoDB::Table": "TableName", "AWS::SQS::Queue": "QueueName",
    "AWS::SecretsManager::Secret": "Name", "AWS::Logs::LogGroup": "LogGroupName",
}


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "processors.cli", "infra", "sam", *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)


@pytest.fixture(scope="module")
def template() -> dict:
    return yaml.safe_load(TEMPLATE.read_text())  # long-form intrinsics only: plain YAML parses it


@pytest.fixture(scope="module")
def cfg() -> Config:
    return load(CONFIG).config


def raw_config() -> dict:
    return yaml.safe_load(CONFIG.read_text())


def resolve(tpl: dict, node) -> tuple[str, str] | None:
    """(type, physical name) of the resource a Ref / Fn::GetAtt points at."""
    if isinstance(node, dict) and "Ref" in node:
        lid = node["Ref"]
    elif isinstance(node, dict) and "Fn::GetAtt" in node:
        lid = node["Fn::GetAtt"][0]
    else:
        return None
    if lid not in tpl["Resources"]:
        return None  # a parameter, or a resource SAM generates (a function's Url)
    res = tpl["Resources"][lid]
    return res["Type"], res["Properties"].get(PHYSICAL_NAME.get(res["Type"], ""), lid)


def function(tpl: dict, name: str, handler: str) -> dict:
    found = [r["Properties"] for r in tpl["Resources"].values()
             if r["Type"] == "AWS::Serverless::Function"
             and r["Properties"]["Environment"]["Variables"].get("POWERTOOLS_SERVICE_NAME") == name]
    assert len(found) == 1, f"one function for {name}"
    assert found[0]["Handler"] == handler
    return found[0]


def walk(node):
    yield node
    if isinstance(node, dict):
        for v in node.values():
            yield from walk(v)
    elif isinstance(node, list):
        for v in node:
            yield from walk(v)


def referenced(tpl: dict, node) -> set[tuple[str, str]]:
    out = set()
    for n in walk(node):
        r = resolve(tpl, n)
        if r:
            out.add(r)
    return out


# --------------------------------------------------------------------------- generated and valid


def test_committed_template_is_up_to_date():
    proc = cli("--check")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_check_detects_drift(tmp_path):
    out = tmp_path / "template.yaml"
    assert cli("--out", str(out)).returncode == 0
    assert (tmp_path / "layer" / "base" / "requirements.txt").read_text().count("pydantic") == 1
    assert "opensearch-py" in (tmp_path / "layer" / "opensearch" / "requirements.txt").read_text()
    assert cli("--out", str(out), "--check").returncode == 0
    out.write_text(out.read_text().replace("BatchSize: 500", "BatchSize: 100"))
    proc = cli("--out", str(out), "--check")
    assert proc.returncode == 1 and "out of date" in proc.stderr


def test_output_is_deterministic():
    raw = Config.model_validate(raw_config())
    assert render_template(raw)[0] == render_template(raw)[0] == TEMPLATE.read_text()


def cfn_lint(path: Path) -> list[str]:
    exe = Path(sys.executable).parent / "cfn-lint"
    if not exe.exists():
        pytest.fail("cfn-lint is not installed: `pip install 'cfn-lint>=1.0'` (the dev extra; ./dev setup does)")
    proc = subprocess.run([str(exe), "--format", "parseable", "--", str(path)], capture_output=True, text=True,
                          timeout=300, check=False)
    lines = [ln for ln in proc.stdout.splitlines() if ln.strip()]
    # exit code bits: 1 fatal, 2 error, 4 warning, 8 informational
    assert not proc.returncode & 3, f"cfn-lint exit {proc.returncode}:\n{proc.stdout}{proc.stderr}"
    errors = [ln for ln in lines if re.search(r":E\d{4}:", ln)]
    assert not errors, "\n".join(errors)
    for ln in lines:
        warnings.warn(f"cfn-lint: {ln}", stacklevel=2)
    return lines


def test_cfn_lint_reports_no_errors():
    cfn_lint(TEMPLATE)


def test_template_shape(template):
    assert template["Transform"] == "AWS::Serverless-2016-10-31"
    assert TEMPLATE.read_text().startswith("# Generated by `sieve infra sam`")
    res = template["Resources"]
    stream = next(r for r in res.values() if r["Type"] == "AWS::Kinesis::Stream")["Properties"]
    assert stream["Name"] == "sieve-access-logs" and stream["ShardCount"] == 2 and stream["RetentionPeriodHours"] == 24
    assert stream["StreamEncryption"] == {"EncryptionType": "KMS", "KeyId": "alias/aws/kinesis"}
    tables = {r["Properties"]["TableName"]: r["Properties"] for r in res.values() if r["Type"] == "AWS::DynamoDB::Table"}
    assert set(tables) == {"sieve-state", "sieve-audit", "sieve-idempotency", "sieve-faq"}
    for t in tables.values():
        assert t["BillingMode"] == "PAY_PER_REQUEST"
        assert t["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert tables["sieve-state"]["KeySchema"] == [{"AttributeName": "pk", "KeyType": "HASH"},
                                                  {"AttributeName": "sk", "KeyType": "RANGE"}]
    assert tables["sieve-state"]["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}
    assert tables["sieve-faq"]["StreamSpecification"] == {"StreamViewType": "NEW_AND_OLD_IMAGES"}
    assert "StreamSpecification" not in tables["sieve-state"]
    queues = [r["Properties"] for r in res.values() if r["Type"] == "AWS::SQS::Queue"]
    assert {q["QueueName"] for q in queues} == {"sieve-logs-failures", "sieve-logs-rejects"}
    assert all(q["SqsManagedSseEnabled"] is True for q in queues)
    # the subscription's role: CloudWatch Logs may assume it, and put records on that stream only
    sub = next(r for r in res.values() if r["Type"] == "AWS::Logs::SubscriptionFilter")["Properties"]
    assert resolve(template, sub["LogGroupName"]) == ("AWS::Logs::LogGroup", "/sieve/access/nginx")
    assert resolve(template, sub["DestinationArn"]) == ("AWS::Kinesis::Stream", "sieve-access-logs")
    role = res[sub["RoleArn"]["Fn::GetAtt"][0]]["Properties"]
    assert role["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {"Service": "logs.amazonaws.com"}
    stmts = [s for p in role["Policies"] for s in p["PolicyDocument"]["Statement"]]
    assert sorted(a for s in stmts for a in s["Action"]) == ["kinesis:PutRecord", "kinesis:PutRecords"]
    assert referenced(template, role["Policies"]) == {("AWS::Kinesis::Stream", "sieve-access-logs")}
    outputs = template["Outputs"]
    assert resolve(template, outputs["SieveAccessLogsStreamArn"]["Value"]) == ("AWS::Kinesis::Stream", "sieve-access-logs")
    assert {resolve(template, o["Value"])[1] for o in outputs.values() if resolve(template, o["Value"])} >= {
        "sieve-state", "sieve-audit", "sieve-idempotency", "sieve-faq", "sieve-logs-failures", "sieve-logs-rejects"}


def test_functions_run_the_packaged_config(template, cfg):
    for name, fn in cfg.functions.items():
        props = function(template, name, fn.handler)
        assert props["Runtime"] == "python3.12" and props["Architectures"] == ["x86_64"]  # python3.12 is on this machine (pyenv): the RIE tests run it
        assert props["Timeout"] == fn.timeout_seconds and props["MemorySize"] == fn.memory_mb
        assert props["CodeUri"] == ".."
        env = props["Environment"]["Variables"]
        assert env["SIEVE_CONFIG"] == "/var/task/pipelines.yaml"
        assert env["POWERTOOLS_METRICS_NAMESPACE"] == "Sieve"
    # the analyser's endpoint defaults to the local model server; on AWS it must be Bedrock's own
    assert function(template, "logs-finaliser", "processors.handlers.finaliser.handler")[
        "Environment"]["Variables"]["SIEVE_BEDROCK_URL"] == ""


# --------------------------------------------------------------------------- event sources


def test_esm_settings_equal_the_config(template, cfg):
    checked = 0
    for name, fn in cfg.functions.items():
        events = function(template, name, fn.handler).get("Events", {})
        streams = [e for e in events.values() if e["Type"] in ("Kinesis", "DynamoDB")]
        assert len(streams) == len(fn.events)
        for ev in fn.events:
            want_source = (("AWS::Kinesis::Stream", ev.kinesis.stream) if ev.kinesis
                           else ("AWS::DynamoDB::Table", ev.dynamodb.table))
            [got] = [e for e in streams if resolve(template, e["Properties"]["Stream"]) == want_source]
            assert got["Type"] == ("Kinesis" if ev.kinesis else "DynamoDB")
            props = got["Properties"]
            for ours, theirs in ESM.items():
                want = getattr(ev, ours)
                assert props.get(theirs, [] if isinstance(want, list) else None) == want, f"{name}: {theirs}"
            if ev.on_failure:
                dest = props["DestinationConfig"]["OnFailure"]
                assert dest["Type"] == "SQS"
                assert resolve(template, dest["Destination"]) == ("AWS::SQS::Queue", ev.on_failure)
            else:
                assert "DestinationConfig" not in props
            assert set(props) <= {"Stream", "DestinationConfig", *ESM.values()}
            checked += 1
    assert checked == sum(len(f.events) for f in cfg.functions.values()) > 0


def test_schedule_is_rounded_up_to_whole_minutes_and_says_so(template, cfg):
    fn = cfg.functions["logs-finaliser"]
    ev = function(template, "logs-finaliser", fn.handler)["Events"]["Schedule"]
    assert ev["Type"] == "Schedule"
    assert ev["Properties"]["Schedule"] == "rate(1 minute)"          # 30 s in pipelines.yaml
    assert "30 s" in ev["Properties"]["Description"] and "rounded up" in ev["Properties"]["Description"]
    assert "30 s" in TEMPLATE.read_text().split("AWSTemplateFormatVersion")[0]  # and in the header comment
    for seconds in (1, 30, 59, 60, 61, 90, 120, 3600):
        expr, note = schedule_rate(seconds)
        minutes = max(1, math.ceil(seconds / 60))
        assert expr == (f"rate({minutes} minutes)" if minutes > 1 else "rate(1 minute)")
        assert (note is None) == (seconds == minutes * 60)


# --------------------------------------------------------------------------- secrets


def local_values() -> set[str]:
    out: set[str] = set()
    for spec in raw_config()["resources"]["secrets"].values():
        lv = spec.get("local_value")
        for v in (lv.values() if isinstance(lv, dict) else [lv] if lv else []):
            out.add(v)
            for m in re.finditer(r"\$\{[A-Za-z_][A-Za-z0-9_]*(?::-([^}]*))?\}", v):
                if m.group(1):
                    out.add(m.group(1))  # the default an emulator would get
    return out


def test_no_local_value_reaches_the_template(template):
    text = TEMPLATE.read_text()
    values = local_values()
    assert "local-only-redaction-key-not-for-aws" in values and "local-signing-secret" in values
    for v in values:
        assert v not in text
    for needle in ("local-only-redaction-key", "127.0.0.1", "localhost"):
        assert needle not in text
    secrets = {r["Properties"]["Name"]: r["Properties"] for r in template["Resources"].values()
               if r["Type"] == "AWS::SecretsManager::Secret"}
    assert set(secrets) == {"sieve/slack", "sieve/redaction"}
    assert not any("SecretString" in p for p in secrets.values())             # no value is ever written
    red = secrets["sieve/redaction"]["GenerateSecretString"]
    assert red["GenerateStringKey"] == "key" and red["PasswordLength"] >= 32  # the finaliser reads JSON key `key`
    assert "GenerateSecretString" not in secrets["sieve/slack"]                # created empty...
    assert "webhook_url" in secrets["sieve/slack"]["Description"]              # ...saying what to put in it


# --------------------------------------------------------------------------- least privilege


def grants(tpl: dict, props: dict) -> set[tuple[str, str]]:
    """(kind, name) of everything a function's Policies name: resources of this template, model ARNs,
    functions. A wildcard resource fails the test."""
    out = set()
    for pol in props["Policies"]:
        assert isinstance(pol, dict), f"managed policy by name: {pol}"
        if "Statement" in pol:
            for st in pol["Statement"]:
                res = st["Resource"] if isinstance(st["Resource"], list) else [st["Resource"]]
                for r in res:
                    assert r != "*" and not (isinstance(r, str) and r.endswith(":*")), st
                    hit = resolve(tpl, r)
                    if hit:
                        out.add(hit)
                    else:
                        arn = r["Fn::Sub"] if isinstance(r, dict) else r
                        out.add((st["Action"] if isinstance(st["Action"], str) else ",".join(st["Action"]),
                                 arn.rsplit("/", 1)[-1].rsplit(":", 1)[-1]))
        else:
            [(template_name, params)] = pol.items()
            assert template_name in ("DynamoDBCrudPolicy", "SQSSendMessagePolicy", "AWSSecretsManagerGetSecretValuePolicy")
            out |= referenced(tpl, params)
    return out


def test_each_function_names_only_what_it_needs(template, cfg):
    logs = cfg.pipelines.logs
    processor = function(template, "logs-processor", "processors.handlers.logs.handler")
    assert grants(template, processor) == {
        ("AWS::DynamoDB::Table", logs.state.table),
        ("AWS::SQS::Queue", logs.rejects_queue),
        ("AWS::SQS::Queue", "sieve-logs-failures"),  # its on-failure destination
    }
    finaliser = function(template, "logs-finaliser", "processors.handlers.finaliser.handler")
    assert grants(template, finaliser) == {
        ("AWS::DynamoDB::Table", logs.state.table),
        ("AWS::DynamoDB::Table", logs.ai.audit_table),
        ("AWS::DynamoDB::Table", logs.slack.idempotency_table),
        ("AWS::SQS::Queue", logs.slack.failure_queue),
        ("AWS::SecretsManager::Secret", logs.ai.redaction_secret),
        ("AWS::SecretsManager::Secret", logs.slack.webhook_secret),
        ("bedrock:InvokeModel", logs.ai.analyser.model_id),
        ("kinesis:ListShards", logs.source_stream),  # the watermark waits for shards that have flushed nothing
    }
    text = yaml.safe_dump(finaliser["Policies"])
    assert f"foundation-model/{logs.ai.analyser.model_id}" in text
    assert "lambda:InvokeFunction" not in text and "kinesis:" not in yaml.safe_dump(processor["Policies"])


def variant(**changes) -> Config:
    doc = raw_config()
    for path, value in changes.items():
        node = doc
        *parents, last = path.split(".")
        for p in parents:
            node = node[p]
        node[last] = value
    return Config.model_validate(doc)


def test_llama_lambda_analyser_may_invoke_that_function_only():
    text, _ = render_template(variant(**{"pipelines.logs.ai.analyser": {"kind": "llama_lambda", "function_name": "sieve-llama"}}))
    tpl = yaml.safe_load(text)
    fin = function(tpl, "logs-finaliser", "processors.handlers.finaliser.handler")
    g = grants(tpl, fin)
    assert ("lambda:InvokeFunction", "sieve-llama") in g
    assert not any(k.startswith("bedrock") for k, _ in g)
    assert "SIEVE_BEDROCK_URL" not in fin["Environment"]["Variables"]
    assert "lambda:InvokeFunction" not in yaml.safe_dump(function(tpl, "logs-processor", "processors.handlers.logs.handler"))


def test_no_analyser_no_model_and_no_redaction_key():
    tpl = yaml.safe_load(render_template(variant(**{"pipelines.logs.ai.analyser": {"kind": "none"}}))[0])
    g = grants(tpl, function(tpl, "logs-finaliser", "processors.handlers.finaliser.handler"))
    assert ("AWS::SecretsManager::Secret", "sieve/redaction") not in g
    assert not any(k.startswith(("bedrock", "lambda")) for k, _ in g)


def test_inference_profile_model_ids_name_the_profile_and_its_model():
    tpl = yaml.safe_load(render_template(variant(**{"pipelines.logs.ai.analyser.model_id": "us.anthropic.claude-3-haiku-20240307-v1:0"}))[0])
    text = yaml.safe_dump(function(tpl, "logs-finaliser", "processors.handlers.finaliser.handler")["Policies"])
    assert "inference-profile/us.anthropic.claude-3-haiku-20240307-v1:0" in text
    assert "foundation-model/anthropic.claude-3-haiku-20240307-v1:0" in text


def test_dynamodb_event_source_and_fifo_queue_variant_is_valid(tmp_path):
    """A config the shipped file does not exercise: a DynamoDB Streams source with a tumbling window,
    a FIFO queue and a handler Sieve does not know (it gets its event sources' permissions only)."""
    cfg = variant(**{
        "resources.queues.sieve-faq-failures": {"fifo": False},
        "resources.queues.sieve-other": {"fifo": True},
        "functions.faq-indexer": {
            "handler": "my_package.faq.handler", "memory_mb": 1024, "environment": {"FAQ_MODE": "strict"},
            "events": [{"dynamodb": {"table": "sieve-faq"}, "batch_size": 50, "starting_position": "LATEST",
                        "tumbling_window_seconds": 60, "on_failure": "sieve-faq-failures",
                        "function_response_types": []}],
        },
        "functions.logs-finaliser.schedule_seconds": 120,
    })
    text, _ = render_template(cfg)
    tpl = yaml.safe_load(text)
    fn = function(tpl, "faq-indexer", "my_package.faq.handler")
    assert fn["Environment"]["Variables"]["FAQ_MODE"] == "strict"
    [ev] = fn["Events"].values()
    assert ev["Type"] == "DynamoDB" and ev["Properties"]["Stream"] == {"Fn::GetAtt": ["SieveFaqTable", "StreamArn"]}
    assert ev["Properties"]["TumblingWindowInSeconds"] == 60 and ev["Properties"]["StartingPosition"] == "LATEST"
    assert "FunctionResponseTypes" not in ev["Properties"]
    assert grants(tpl, fn) == {("AWS::SQS::Queue", "sieve-faq-failures")}
    fifo = next(r["Properties"] for r in tpl["Resources"].values() if r["Type"] == "AWS::SQS::Queue"
                and r["Properties"]["QueueName"] == "sieve-other.fifo")
    assert fifo["FifoQueue"] is True
    sched = function(tpl, "logs-finaliser", "processors.handlers.finaliser.handler")["Events"]["Schedule"]["Properties"]
    assert sched["Schedule"] == "rate(2 minutes)" and "rounded" not in sched["Description"]
    out = tmp_path / "template.yaml"
    out.write_text(text)
    cfn_lint(out)


# --------------------------------------------------------------------------- every entry point, the domain, the image


def test_every_handler_module_has_a_function(template):
    handlers = sorted(p.stem for p in (ROOT / "processors" / "handlers").glob("*.py") if p.stem != "__init__")
    in_template = {r["Properties"].get("Handler") or r["Properties"].get("ImageConfig", {}).get("Command", [None])[0]
                   for r in template["Resources"].values() if r["Type"] == "AWS::Serverless::Function"}
    modules = {h.rsplit(".", 1)[0].rsplit(".", 1)[-1] for h in in_template if h}
    # slack_actions answers the buttons of notifier kind `bot`; the shipped config posts by webhook
    assert set(handlers) - modules == {"slack_actions"}, sorted(set(handlers) - modules)
    bot = variant(**{"pipelines.logs.slack": {"kind": "bot", "token_secret": "sieve/slack", "channel": "C0OPS"}})
    tpl = yaml.safe_load(render_template(bot)[0])
    actions = function(tpl, "slack-actions", "processors.handlers.slack_actions.handler")
    assert actions["FunctionUrlConfig"] == {"AuthType": "NONE"}
    assert grants(tpl, actions) == {("AWS::DynamoDB::Table", "sieve-state"), ("AWS::SecretsManager::Secret", "sieve/slack")}


def test_ask_is_behind_a_function_url_and_may_invoke_only_itself(template):
    ask = function(template, "faq-ask", "processors.handlers.ask.handler")
    assert ask["FunctionUrlConfig"] == {"AuthType": "NONE"}
    assert ask["FunctionName"] == {"Fn::Sub": "${AWS::StackName}-faq-ask"}
    stmts = [s for p in ask["Policies"] if "Statement" in p for s in p["Statement"]]
    [invoke] = [s for s in stmts if s["Action"] == "lambda:InvokeFunction"]
    assert [r["Fn::Sub"].rsplit(":function:", 1)[1] for r in invoke["Resource"]] == [
        "${AWS::StackName}-faq-ask", "${AWS::StackName}-faq-ask:*"]
    assert "FaqAskFunctionUrl" in template["Outputs"]


def test_opensearch_domain_or_an_existing_one_and_es_permissions_on_it_only(template):
    params, conds = template["Parameters"], template["Conditions"]
    assert params["OpenSearchEndpoint"]["Default"] == "" and conds["CreateOpenSearchDomain"] == {
        "Fn::Equals": [{"Ref": "OpenSearchEndpoint"}, ""]}
    [(lid, domain)] = [(k, r) for k, r in template["Resources"].items() if r["Type"] == "AWS::OpenSearchService::Domain"]
    assert domain["Condition"] == "CreateOpenSearchDomain"
    props = domain["Properties"]
    assert props["EngineVersion"].startswith("OpenSearch_2.")  # k-NN is part of every OpenSearch 2.x domain
    assert props["DomainEndpointOptions"]["EnforceHTTPS"] and props["EncryptionAtRestOptions"]["Enabled"]
    arn = "arn:${AWS::Partition}:es:${AWS::Region}:${AWS::AccountId}:domain/${OpenSearchDomainName}/*"
    for name, handler, writes in (("faq-processor", "processors.handlers.faq.handler", True),
                                  ("faq-ask", "processors.handlers.ask.handler", False)):
        fn = function(template, name, handler)
        assert fn["Environment"]["Variables"]["SIEVE_OPENSEARCH_URL"]["Fn::If"][0] == "CreateOpenSearchDomain"
        [es] = [s for p in fn["Policies"] if "Statement" in p for s in p["Statement"] if s.get("Sid") == "FaqIndexes"]
        assert es["Resource"] == {"Fn::Sub": arn}
        assert ("es:ESHttpDelete" in es["Action"]) is writes and "es:ESHttpPost" in es["Action"]
        assert "SieveOpenSearchLayer" in [layer["Ref"] for layer in fn["Layers"]]
    for name, handler in (("logs-processor", "processors.handlers.logs.handler"),
                          ("logs-finaliser", "processors.handlers.finaliser.handler")):
        fn = function(template, name, handler)
        assert "es:" not in yaml.safe_dump(fn["Policies"]) and "SIEVE_OPENSEARCH_URL" not in fn["Environment"]["Variables"]
        assert [layer["Ref"] for layer in fn["Layers"]] == ["SieveDependenciesLayer"]


def test_llama_analyser_is_an_image_function_created_only_with_an_image(template):
    [(lid, res)] = [(k, r) for k, r in template["Resources"].items() if r["Type"] == "AWS::Serverless::Function"
                    and r["Properties"].get("PackageType") == "Image"]
    assert res["Condition"] == "HasLlamaImage" and template["Parameters"]["LlamaImageUri"]["Default"] == ""
    props = res["Properties"]
    assert props["ImageUri"] == {"Ref": "LlamaImageUri"} and props["ImageConfig"]["Command"] == [
        "processors.handlers.llama_lambda.handler"]
    assert "Layers" not in props and "CodeUri" not in props and "Runtime" not in props
    assert props["FunctionName"] == "sieve-llama"
    # the finaliser with kind llama_lambda may invoke exactly the function this template creates
    tpl = yaml.safe_load(render_template(variant(**{"pipelines.logs.ai.analyser": {
        "kind": "llama_lambda", "function_name": "sieve-llama"}}))[0])
    fin = function(tpl, "logs-finaliser", "processors.handlers.finaliser.handler")
    assert ("lambda:InvokeFunction", "sieve-llama") in grants(tpl, fin)


def test_connectors_use_an_iam_role_not_static_keys(monkeypatch):
    from processors.adapters.mlcommons import (AwsCredential, RoleCredential, bedrock_converse_connector_body,
                                               connector_credential)

    role = "arn:aws:iam::123456789012:role/sieve-ml-connector"
    body = bedrock_converse_connector_body(model="anthropic.claude-3-haiku-20240307-v1:0", region="us-east-1",
                                           credential=RoleCredential(role))
    assert body["credential"] == {"roleArn": role}
    monkeypatch.delenv("SIEVE_ML_CONNECTOR_ROLE_ARN", raising=False)
    with pytest.raises(ValueError, match="IAM role"):
        connector_credential()  # on AWS, no role: refused rather than falling back to keys
    assert isinstance(connector_credential(local=True), AwsCredential)
    monkeypatch.setenv("SIEVE_ML_CONNECTOR_ROLE_ARN", role)
    assert connector_credential() == RoleCredential(role)
    with pytest.raises(ValueError):
        RoleCredential("AKIAFAKE")


def test_opensearch_client_signs_with_sigv4_for_a_domain_and_not_for_the_local_node(monkeypatch):
    import requests
    from opensearchpy import AWSV4SignerAuth

    from processors import wiring

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    loaded = load(CONFIG)
    monkeypatch.delenv("SIEVE_OPENSEARCH_URL", raising=False)
    local = wiring.opensearch_client(loaded).transport.get_connection()
    assert local.host == "http://127.0.0.1:9200"
    assert not isinstance(getattr(getattr(local, "session", None), "auth", None), AWSV4SignerAuth)
    monkeypatch.setenv("SIEVE_OPENSEARCH_URL", "https://search-sieve-faq-abc.eu-west-1.es.amazonaws.com")
    conn = wiring.opensearch_client(loaded).transport.get_connection()
    assert conn.host == "https://search-sieve-faq-abc.eu-west-1.es.amazonaws.com:443"
    assert isinstance(conn.session.auth, AWSV4SignerAuth)
    req = requests.Request("POST", conn.host + "/faq-public/_search", data=b"{}").prepare()
    signed = conn.session.auth(req)
    assert signed.headers["Authorization"].startswith("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/")
    assert "/eu-west-1/es/aws4_request" in signed.headers["Authorization"]
