"""`sieve deploy --local [--endpoint URL] [--stack-name sieve] [--package-dir build/package]`: the packaged
template as a CloudFormation stack on an emulator (the moto server, or LocalStack), without SAM CLI or AWS.

What `sam deploy` does, done here step by step: the archives `sieve package` built are uploaded to an S3
bucket of the endpoint, the template's CodeUri / ContentUri become those S3 locations, aws-sam-translator
(the library SAM CLI and CloudFormation's own transform use) turns AWS::Serverless-2016-10-31 into plain
CloudFormation, and the stack is created and waited for. It prints the stack's status and what was
created; resources the emulator's CloudFormation does not implement are named, never hidden.

On AWS use the SAM CLI: `sam deploy -t build/package/template.yaml --guided` (infra/README.md).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from processors.errors import SieveError

ROOT = Path(__file__).resolve().parents[2]


def register(sub) -> None:
    p = sub.add_parser("deploy", help="create the packaged template as a CloudFormation stack on an emulator (--local)")
    p.add_argument("--local", action="store_true", required=True,
                   help="deploy to the emulator at --endpoint / AWS_ENDPOINT_URL (AWS itself: use `sam deploy`)")
    p.add_argument("--endpoint", help="emulator endpoint (default: AWS_ENDPOINT_URL, or LocalStack's)")
    p.add_argument("--stack-name", default="sieve")
    p.add_argument("--package-dir", type=Path, default=ROOT / "build" / "package",
                   help="what `sieve package` built (built now when missing)")
    p.add_argument("--parameter", action="append", default=[], metavar="KEY=VALUE", help="a template parameter")
    p.set_defaults(func=run)


class _ManagedPolicies:
    """aws-sam-translator asks for a map of managed policy names to ARNs only for policies named by name;
    the generated template names none (AWS managed execution roles are added by ARN by SAM itself)."""

    def load(self) -> dict[str, str]:
        return {}


def translate(template: dict, parameters: dict[str, str] | None = None) -> dict:
    """AWS::Serverless-2016-10-31 -> plain CloudFormation, by aws-sam-translator."""
    from samtranslator.translator.transform import transform

    try:
        return transform(template, parameters or {}, _ManagedPolicies())
    except Exception as exc:  # InvalidDocumentException and friends: name every cause
        causes = getattr(exc, "causes", None) or []
        detail = "; ".join(str(getattr(c, "message", c)) for c in causes) or str(exc)
        raise SieveError(f"aws-sam-translator refused the template: {detail}") from None


def upload(template: dict, package_dir: Path, s3, bucket: str, prefix: str) -> dict:
    """Upload the archives the template names (CodeUri / ContentUri) and point it at them in S3."""
    uploaded: dict[str, str] = {}

    def s3_uri(local: str) -> dict[str, str]:
        if local not in uploaded:
            path = package_dir / local
            if not path.is_file():
                raise SieveError(f"{path}: not built; run `sieve package`")
            key = f"{prefix}/{local}"
            s3.upload_file(str(path), bucket, key)
            uploaded[local] = key
        return {"Bucket": bucket, "Key": uploaded[local]}

    for res in template["Resources"].values():
        props = res.get("Properties", {})
        if res["Type"] == "AWS::Serverless::Function" and isinstance(props.get("CodeUri"), str):
            props["CodeUri"] = s3_uri(props["CodeUri"])
        elif res["Type"] == "AWS::Serverless::LayerVersion" and isinstance(props.get("ContentUri"), str):
            props["ContentUri"] = s3_uri(props["ContentUri"])
    return template


def supported_types(cfn_template: dict) -> tuple[list[str], list[str]]:
    """(types the moto CloudFormation implements, types it does not) among the template's resources."""
    try:
        from moto.cloudformation.parsing import get_model_map
    except ImportError:  # not moto (LocalStack): nothing known to be missing
        return sorted({r["Type"] for r in cfn_template["Resources"].values()}), []
    known = set(get_model_map())
    types = sorted({r["Type"] for r in cfn_template["Resources"].values()})
    return [t for t in types if t in known], [t for t in types if t not in known]


def _references(node) -> set[str]:
    """Logical ids a template value refers to (Ref, Fn::GetAtt, ${X} / ${X.Attr} in Fn::Sub)."""
    import re

    out: set[str] = set()
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "Ref" and isinstance(v, str):
                out.add(v)
            elif k == "Fn::GetAtt":
                out.add(v[0] if isinstance(v, list) else str(v).split(".")[0])
            elif k == "Fn::Sub":
                text = v[0] if isinstance(v, list) else v
                out |= {m.split(".")[0] for m in re.findall(r"\$\{([A-Za-z0-9.:]+)\}", text) if "::" not in m}
                if isinstance(v, list):
                    out |= _references(v[1])
            else:
                out |= _references(v)
    elif isinstance(node, list):
        for v in node:
            out |= _references(v)
    return out


def prune_outputs(cfn_template: dict, skipped: list[str]) -> list[str]:
    """Remove the outputs that read an attribute of a resource the emulator does not implement (moto
    fails the whole CreateStack on them); returns their names."""
    gone = {lid for lid, r in cfn_template["Resources"].items() if r["Type"] in skipped}
    removed = [k for k, o in cfn_template.get("Outputs", {}).items() if _references(o.get("Value")) & gone]
    for k in removed:
        del cfn_template["Outputs"][k]
    return removed


def deploy_local(*, endpoint: str, stack_name: str, package_dir: Path, parameters: dict[str, str] | None = None,
                 region: str | None = None, timeout: float = 300) -> dict[str, Any]:
    """Create (or replace) the stack on the emulator; returns status, resources, outputs and the resource
    types the emulator's CloudFormation skipped."""
    from processors.adapters import aws

    region = aws.region(region)
    text = (package_dir / "template.yaml").read_text()
    template = yaml.safe_load(text)
    kw = {"endpoint_url": endpoint, "region_name": region}
    session = aws.session(region)
    s3 = session.client("s3", **kw)
    cfn = session.client("cloudformation", **kw)
    account = session.client("sts", **kw).get_caller_identity()["Account"]
    bucket = f"sieve-artifacts-{account}-{region}"
    try:
        s3.create_bucket(Bucket=bucket, **({} if region == "us-east-1" else
                                           {"CreateBucketConfiguration": {"LocationConstraint": region}}))
    except s3.exceptions.BucketAlreadyOwnedByYou:
        pass
    upload(template, package_dir, s3, bucket, stack_name)
    params = dict(parameters or {})
    cfn_template = translate(template, params)
    supported, skipped = supported_types(cfn_template)
    pruned = prune_outputs(cfn_template, skipped)
    try:
        cfn.delete_stack(StackName=stack_name)
    except Exception:  # noqa: BLE001 (there was none)
        pass
    cfn.create_stack(StackName=stack_name, TemplateBody=json.dumps(cfn_template),
                     Capabilities=["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND"],
                     Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in params.items()])
    deadline = time.monotonic() + timeout
    while True:
        stack = cfn.describe_stacks(StackName=stack_name)["Stacks"][0]
        if not stack["StackStatus"].endswith("IN_PROGRESS") or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    resources = cfn.list_stack_resources(StackName=stack_name)["StackResourceSummaries"]
    events = cfn.describe_stack_events(StackName=stack_name)["StackEvents"]
    return {
        "status": stack["StackStatus"], "reason": stack.get("StackStatusReason"),
        "resources": [{"logical_id": r["LogicalResourceId"], "type": r["ResourceType"],
                       "physical_id": r.get("PhysicalResourceId"), "status": r["ResourceStatus"]} for r in resources],
        "outputs": {o["OutputKey"]: o.get("OutputValue") for o in stack.get("Outputs", [])},
        "failures": [f"{e['LogicalResourceId']}: {e.get('ResourceStatusReason')}" for e in events
                     if e["ResourceStatus"].endswith("FAILED")],
        "template": cfn_template, "supported_types": supported, "skipped_types": skipped, "bucket": bucket,
        "pruned_outputs": pruned,
    }


def run(args) -> int:
    from processors.adapters import aws

    endpoint = args.endpoint or os.environ.get("AWS_ENDPOINT_URL")
    if not endpoint and aws.target() == "localstack":
        from localstack_client.config import get_service_endpoint

        endpoint = get_service_endpoint("cloudformation")
    if not endpoint:
        raise SieveError("sieve deploy --local needs an emulator: --endpoint, AWS_ENDPOINT_URL (`sieve up` writes "
                         ".sieve/env) or SIEVE_TARGET=localstack; on AWS use `sam deploy` (infra/README.md)")
    aws.use_local_credentials_if_missing()
    if not (args.package_dir / "template.yaml").exists():
        from processors.runtime.package import package

        package(args.package_dir, llama=False)
    params = dict(p.split("=", 1) for p in args.parameter)
    result = deploy_local(endpoint=endpoint, stack_name=args.stack_name, package_dir=args.package_dir,
                          parameters=params)
    print(f"stack {args.stack_name} on {endpoint}: {result['status']}" + (f" ({result['reason']})" if result["reason"] else ""))
    for r in result["resources"]:
        print(f"  {r['status']:<16} {r['type']:<36} {r['logical_id']}  {r['physical_id'] or ''}")
    if result["skipped_types"]:
        print("not implemented by this emulator's CloudFormation (declared, not created): "
              + ", ".join(result["skipped_types"]), file=sys.stderr)
    if result["pruned_outputs"]:
        print("outputs left out (they read those resources): " + ", ".join(result["pruned_outputs"]), file=sys.stderr)
    for f in result["failures"]:
        print(f"  failed: {f}", file=sys.stderr)
    return 0 if result["status"] == "CREATE_COMPLETE" else 1
