"""The packaged template (`sieve package`), SAM-translated by aws-sam-translator and created as a
CloudFormation stack on the moto server (`sieve deploy --local`): CREATE_COMPLETE, with the functions, event
source mappings, schedules, tables, queues and roles it declares, each function running the uploaded
archive. moto's CloudFormation does not implement every type the template uses; those are named exactly
(and the test fails if that list changes either way), and everything else is checked on moto's APIs.

The stack is created with OpenSearchEndpoint set (the existing-domain path: moto cannot create an
OpenSearch Service domain from CloudFormation) and a LlamaImageUri (so the image function is created)."""

from __future__ import annotations

import base64
import hashlib
import json
import urllib.request
from pathlib import Path

import boto3
import pytest
import yaml

from processors.commands.deploy import deploy_local
from processors.config import load

ROOT = Path(__file__).resolve().parents[2]
REGION = "us-east-1"
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/sieve-llama:test"
DOMAIN = "https://search-sieve-faq-test.us-east-1.es.amazonaws.com"
#: what moto 5's CloudFormation skips (a warning, no resource): declared by the template, not created here
NOT_IN_MOTO_CFN = {"AWS::Lambda::Url", "AWS::Logs::SubscriptionFilter", "AWS::OpenSearchService::Domain",
                   "AWS::SecretsManager::Secret"}


@pytest.fixture(scope="module")
def deployed(built, moto_endpoint):
    urllib.request.urlopen(urllib.request.Request(moto_endpoint + "/moto-api/reset", method="POST"), timeout=5).close()
    with pytest.MonkeyPatch.context() as mp:
        for k, v in {"AWS_ENDPOINT_URL": moto_endpoint, "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
                     "AWS_REGION": REGION, "AWS_DEFAULT_REGION": REGION}.items():
            mp.setenv(k, v)
        mp.delenv("AWS_PROFILE", raising=False)
        result = deploy_local(endpoint=moto_endpoint, stack_name="sieve-test", package_dir=built["out"],
                              parameters={"OpenSearchEndpoint": DOMAIN, "LlamaImageUri": IMAGE})
        yield {**result, "sam": yaml.safe_load((built["out"] / "template.yaml").read_text()), "built": built}


def test_stack_is_created_complete(deployed):
    assert deployed["status"] == "CREATE_COMPLETE", (deployed["reason"], deployed["failures"])
    assert not deployed["failures"]
    assert set(deployed["skipped_types"]) == NOT_IN_MOTO_CFN
    created = {r["type"] for r in deployed["resources"] if r["status"] == "CREATE_COMPLETE" and r["type"]}
    assert {"AWS::Lambda::Function", "AWS::Lambda::EventSourceMapping", "AWS::Lambda::LayerVersion",
            "AWS::DynamoDB::Table", "AWS::Kinesis::Stream", "AWS::SQS::Queue", "AWS::Events::Rule",
            "AWS::IAM::Role", "AWS::Logs::LogGroup", "AWS::Lambda::Permission"} <= created


def test_every_function_exists_with_its_handler_runtime_layers_and_the_uploaded_code(deployed):
    lam = boto3.client("lambda", region_name=REGION)
    fns = {f["FunctionName"]: f for f in lam.list_functions()["Functions"]}
    by_lid = {r["logical_id"]: r["physical_id"] for r in deployed["resources"] if r["type"] == "AWS::Lambda::Function"}
    sam_fns = {lid: r["Properties"] for lid, r in deployed["sam"]["Resources"].items() if r["Type"] == "AWS::Serverless::Function"}
    assert set(by_lid) == set(sam_fns)  # the llama image function too (LlamaImageUri given)
    created = {r["logical_id"]: r["type"] for r in deployed["resources"] if r["status"] == "CREATE_COMPLETE"}
    layers = boto3.client("lambda", region_name=REGION).list_layers()["Layers"]
    assert len(layers) == sum(1 for t in created.values() if t == "AWS::Lambda::LayerVersion") >= 1
    code_sha = base64.b64encode(hashlib.sha256((deployed["built"]["out"] / "code.zip").read_bytes()).digest()).decode()
    for lid, props in sam_fns.items():
        got = lam.get_function(FunctionName=by_lid[lid])["Configuration"]
        cfn_props = deployed["template"]["Resources"][lid]["Properties"]
        if props.get("PackageType") == "Image":
            # moto's CloudFormation creates it but drops PackageType/ImageConfig (moto/awslambda/models.py
            # create_from_cloudformation_json passes a fixed list of properties): checked on the template
            assert got["FunctionName"] == "sieve-llama"
            assert cfn_props["PackageType"] == "Image" and cfn_props["Code"] == {"ImageUri": {"Ref": "LlamaImageUri"}}
            assert cfn_props["ImageConfig"]["Command"] == ["processors.handlers.llama_lambda.handler"]
            continue
        assert got["Handler"] == props["Handler"] and got["Runtime"] == props["Runtime"] == "python3.12"
        assert got["Timeout"] == props["Timeout"] and got["MemorySize"] == props["MemorySize"]
        assert got["CodeSha256"] == code_sha, lid  # the archive `sieve package` built, as uploaded
        # moto's CloudFormation drops Layers too (same list): the translated template names the layers,
        # and those layer versions were created from the uploaded archives
        layer_ids = [layer["Ref"] for layer in cfn_props["Layers"]]
        assert len(layer_ids) == len(props["Layers"])
        assert all(created[lid_] == "AWS::Lambda::LayerVersion" for lid_ in layer_ids)
        env = got["Environment"]["Variables"]
        assert env["SIEVE_CONFIG"] == "/var/task/pipelines.yaml"
        if "SIEVE_OPENSEARCH_URL" in props["Environment"]["Variables"]:
            assert env["SIEVE_OPENSEARCH_URL"] == DOMAIN  # the existing domain, from the parameter
    assert by_lid["FaqAskFunction"] == "sieve-test-faq-ask"


def test_event_source_mappings_carry_the_configured_settings(deployed):
    cfg = load(ROOT / "pipelines.yaml").config
    lam = boto3.client("lambda", region_name=REGION)
    esms = lam.list_event_source_mappings()["EventSourceMappings"]
    want = [(ev, name) for name, fn in cfg.functions.items() for ev in fn.events]
    assert len(esms) == len(want) > 0
    for ev, name in want:
        suffix = f":stream/{ev.kinesis.stream}" if ev.kinesis else f":table/{ev.dynamodb.table}/stream/"
        [m] = [m for m in esms if suffix in m["EventSourceArn"]]
        assert m["BatchSize"] == ev.batch_size
        assert m["FunctionArn"].split(":function:")[1].startswith("sieve-test-")


def test_tables_streams_queues_and_schedules_exist(deployed):
    cfg = load(ROOT / "pipelines.yaml").config
    ddb = boto3.client("dynamodb", region_name=REGION)
    for name, spec in cfg.resources.tables.items():
        t = ddb.describe_table(TableName=name)["Table"]
        assert t["KeySchema"][0]["AttributeName"] == spec.partition_key
        assert ("StreamSpecification" in t and t["StreamSpecification"]["StreamViewType"]) == (spec.stream or False)
    kin = boto3.client("kinesis", region_name=REGION)
    for name, spec in cfg.resources.streams.items():
        assert kin.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]["OpenShardCount"] == spec.shards
    sqs = boto3.client("sqs", region_name=REGION)
    for name in cfg.resources.queues:
        assert sqs.get_queue_url(QueueName=name)["QueueUrl"]
    rules = {r["Name"]: r for r in boto3.client("events", region_name=REGION).list_rules()["Rules"]}
    finaliser = [r for n, r in rules.items() if "LogsFinaliser" in n]
    crawler = [r for n, r in rules.items() if "FaqCrawler" in n]
    assert [r["ScheduleExpression"] for r in finaliser] == ["rate(1 minute)"] and finaliser[0]["State"] == "ENABLED"
    # no sources in the shipped config: the crawler's daily schedule exists but is off
    assert [r["ScheduleExpression"] for r in crawler] == ["rate(1440 minutes)"]
    assert crawler[0]["State"] == ("ENABLED" if cfg.pipelines.faq.sources else "DISABLED")


def test_roles_grant_what_each_function_needs(deployed):
    iam = boto3.client("iam", region_name=REGION)
    roles = {r["logical_id"]: r["physical_id"] for r in deployed["resources"] if r["type"] == "AWS::IAM::Role"}

    def statements(lid: str) -> list[dict]:
        out = []
        for name in iam.list_role_policies(RoleName=roles[lid])["PolicyNames"]:
            doc = iam.get_role_policy(RoleName=roles[lid], PolicyName=name)["PolicyDocument"]
            if isinstance(doc, str):  # moto keeps an inline policy from CloudFormation as Python's repr
                import ast

                doc = json.loads(doc) if doc.lstrip().startswith('{"') else ast.literal_eval(doc)
            out += doc["Statement"] if isinstance(doc["Statement"], list) else [doc["Statement"]]
        return out

    def actions(sts) -> set[str]:
        return {a for s in sts for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])}

    ask = statements("FaqAskFunctionRole")
    assert {"lambda:InvokeFunction", "es:ESHttpGet", "es:ESHttpPost"} <= actions(ask)
    assert "es:ESHttpDelete" not in actions(ask)  # it only searches
    invoke = next(s for s in ask if s["Action"] == "lambda:InvokeFunction")
    assert all(r.endswith(("function:sieve-test-faq-ask", "function:sieve-test-faq-ask:*")) for r in invoke["Resource"])
    es = next(s for s in ask if "es:ESHttpGet" in s["Action"])
    assert es["Resource"].endswith(":domain/sieve-faq/*")
    indexer = statements("FaqProcessorFunctionRole")
    assert {"es:ESHttpPut", "es:ESHttpDelete"} <= actions(indexer) and "lambda:InvokeFunction" not in actions(indexer)
    processor = statements("LogsProcessorFunctionRole")
    assert not {a for a in actions(processor) if a.startswith(("es:", "bedrock:", "lambda:Invoke"))}
