"""The committed CloudFormation template (infra/cloudformation/), stood up on moto
as far as moto goes, with the three functions run as the template configures them.

The template's buckets, queues (with the attributes and redrive policies it
writes), table bucket and namespace are made on moto; each function is started
with the environment the template gives it (the references resolved to what was
made, plus Lambda's logging variables from its LoggingConfig), fed as its event
source mapping says, and the committer is invoked with the schedule's own event.
OTLP from the OpenTelemetry SDK goes in through the API stand-in, and PyIceberg
reads the rows back. A variable the template names wrong, a queue setting the
stages cannot work with, or a schedule event the committer ignores fails here.
"""

import json
import os
import time
import uuid

from lambda_stand_in import Function, HttpApi, aws_clients, drain_queue
from otel_sdk import send_with_python_sdk
from pyiceberg.table import StaticTable
from test_aws_pipeline import moto  # noqa: F401 (the fixture)

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
TEMPLATE = os.path.join(ROOT, "infra", "cloudformation", "otlp2parquet.template.json")
ACCOUNT, REGION = "123456789012", "us-east-1"


class Stack:
    """The template's resources made on moto, and a resolver for its references."""

    def __init__(self, template, endpoint):
        self.template = template
        self.resources = template["Resources"]
        self.aws = aws_clients(endpoint)
        self.run = uuid.uuid4().hex[:8]
        self.made = {}  # logical id -> {"Ref": ..., attribute: ...}
        for kind, make in (("AWS::S3::Bucket", self.bucket), ("AWS::SQS::Queue", self.queue),
                           ("AWS::S3Tables::TableBucket", self.table_bucket),
                           ("AWS::S3Tables::Namespace", self.namespace)):
            pending = [i for i, r in self.resources.items() if r["Type"] == kind]
            # Dead-letter queues before the queues whose redrive policy names them.
            pending.sort(key=lambda i: "RedrivePolicy" in self.resources[i].get("Properties", {}))
            for logical_id in pending:
                self.made[logical_id] = make(logical_id, self.resources[logical_id].get("Properties", {}))

    def resolve(self, value):
        if isinstance(value, list):
            return [self.resolve(v) for v in value]
        if not isinstance(value, dict):
            return value
        if len(value) != 1:
            return {k: self.resolve(v) for k, v in value.items()}
        (function, argument), = value.items()
        if function == "Ref":
            pseudo = {"AWS::AccountId": ACCOUNT, "AWS::Region": REGION, "AWS::Partition": "aws",
                      "AWS::URLSuffix": "amazonaws.com"}
            if argument in pseudo:
                return pseudo[argument]
            return self.made[argument]["Ref"]
        if function == "Fn::GetAtt":
            logical_id, attribute = argument
            return self.made[logical_id][attribute]
        if function == "Fn::Join":
            separator, parts = argument
            return separator.join(str(self.resolve(p)) for p in parts)
        return {function: self.resolve(argument)}

    def bucket(self, logical_id, _properties):
        name = f"{logical_id.lower()[:30]}-{self.run}"
        self.aws["s3"].create_bucket(Bucket=name)
        return {"Ref": name, "Arn": f"arn:aws:s3:::{name}"}

    def queue(self, logical_id, properties):
        fifo = properties.get("FifoQueue", False)
        name = f"{logical_id[:40]}-{self.run}" + (".fifo" if fifo else "")
        attributes = {"VisibilityTimeout": properties.get("VisibilityTimeout", 30),
                      "MaximumMessageSize": properties["MaximumMessageSize"],
                      "MessageRetentionPeriod": properties["MessageRetentionPeriod"]}
        if fifo:
            attributes["FifoQueue"] = True
            attributes["ContentBasedDeduplication"] = properties.get("ContentBasedDeduplication", False)
        if "RedrivePolicy" in properties:
            attributes["RedrivePolicy"] = json.dumps(self.resolve(properties["RedrivePolicy"]))
        url = self.aws["sqs"].create_queue(
            QueueName=name, Attributes={k: str(v).lower() if isinstance(v, bool) else str(v)
                                        for k, v in attributes.items()})["QueueUrl"]
        return {"Ref": url, "Arn": f"arn:aws:sqs:{REGION}:{ACCOUNT}:{name}", "QueueName": name}

    def table_bucket(self, _logical_id, properties):
        # One template, many test runs on one moto: the name gets the run's suffix.
        name = f"{self.resolve(properties['TableBucketName'])}-{self.run}"
        arn = self.aws["s3tables"].create_table_bucket(name=name)["arn"]
        return {"Ref": arn, "TableBucketARN": arn}

    def namespace(self, _logical_id, properties):
        arn = self.resolve(properties["TableBucketARN"])
        self.aws["s3tables"].create_namespace(tableBucketARN=arn, namespace=[properties["Namespace"]])
        return {"Ref": properties["Namespace"]}

    def of_type(self, kind):
        return {i: r.get("Properties", {}) for i, r in self.resources.items() if r["Type"] == kind}


def binary_of(stack, properties):
    """The binary a function runs: its code key parameter's default names the zip."""
    key = properties["Code"]["S3Key"]["Ref"]
    return os.path.basename(stack.template["Parameters"][key]["Default"]).removesuffix(".zip")


def test_the_committed_template_wires_a_working_pipeline(moto):  # noqa: F811
    with open(TEMPLATE) as f:
        template = json.load(f)
    stack = Stack(template, moto)
    functions = {}
    try:
        for logical_id, properties in stack.of_type("AWS::Lambda::Function").items():
            if properties["Runtime"] != "provided.al2023":
                continue
            environment = {name: str(stack.resolve(value))
                           for name, value in properties["Environment"]["Variables"].items()}
            assert all(isinstance(v, str) and "{" not in v for v in environment.values()), environment
            logging = properties.get("LoggingConfig", {})
            environment.update({
                # What Lambda sets from the function's LoggingConfig.
                "AWS_LAMBDA_LOG_FORMAT": logging.get("LogFormat", "Text"),
                "AWS_LAMBDA_LOG_LEVEL": logging.get("ApplicationLogLevel", "INFO"),
                "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                "AWS_REGION": REGION, "AWS_ENDPOINT_URL": moto,
            })
            name = binary_of(stack, properties)
            if name == "otlp2parquet-committer":
                # The template waits 300 s before committing what is staged; a
                # test cannot. The schedule's event still decides when.
                assert environment["OTLP2PARQUET_COMMIT_MAX_WAIT_SECS"] == "300"
                environment["OTLP2PARQUET_COMMIT_MAX_WAIT_SECS"] = "1"
            functions[logical_id] = Function(name, environment, timeout=properties["Timeout"])
        assert sorted(f.name for f in functions.values()) == [
            "otlp2parquet-committer", "otlp2parquet-compactor", "otlp2parquet-ingest"]

        # The API's routes all reach the ingest function.
        integrations = stack.of_type("AWS::ApiGatewayV2::Integration")
        (integration,) = integrations.values()
        ingest_id = integration["IntegrationUri"]["Fn::GetAtt"][0]
        api = HttpApi(functions[ingest_id])
        send_with_python_sdk(api.url, "template-test")
        api.stop()

        # Each event source mapping feeds its queue to its function, in order.
        sqs = stack.aws["sqs"]
        mappings = sorted(stack.of_type("AWS::Lambda::EventSourceMapping").values(),
                          key=lambda m: stack.resources[m["EventSourceArn"]["Fn::GetAtt"][0]]["Properties"]
                          .get("FifoQueue", False))
        for mapping in mappings:
            assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
            queue_url = stack.made[mapping["EventSourceArn"]["Fn::GetAtt"][0]]["Ref"]
            function = functions[mapping["FunctionName"]["Ref"]]
            handed, failed = drain_queue(sqs, queue_url, function)
            assert handed and failed == 0, function.output()

        # Staged (the template commits 100 compactions at a time): nothing yet,
        # until the schedule's event arrives.
        (rule,) = stack.of_type("AWS::Events::Rule").values()
        (target,) = rule["Targets"]
        committer = functions[target["Arn"]["Fn::GetAtt"][0]]
        (bucket_arn,) = [m["TableBucketARN"] for m in stack.made.values() if "TableBucketARN" in m]
        namespace = next(iter(stack.of_type("AWS::S3Tables::Namespace").values()))["Namespace"]
        assert rows(stack, bucket_arn, namespace, "traces") == 0
        time.sleep(1.5)
        committer.invoke(json.loads(target["Input"]))

        assert rows(stack, bucket_arn, namespace, "traces") == 120
        assert rows(stack, bucket_arn, namespace, "logs") == 75
        assert rows(stack, bucket_arn, namespace, "metrics_sum") == 2
        # Every line the functions logged is JSON at INFO or above, as the
        # template's LoggingConfig asks (the ingest function logs nothing
        # at INFO for a good request).
        logged = [line for f in functions.values() for line in f.output().splitlines() if line.strip()]
        assert logged
        for line in logged:
            assert json.loads(line)["level"] in ("INFO", "WARN", "ERROR"), line
        # Nothing dead-lettered.
        for logical_id, properties in stack.of_type("AWS::SQS::Queue").items():
            attributes = sqs.get_queue_attributes(QueueUrl=stack.made[logical_id]["Ref"],
                                                  AttributeNames=["ApproximateNumberOfMessages"])
            assert attributes["Attributes"]["ApproximateNumberOfMessages"] == "0", logical_id
    finally:
        for f in functions.values():
            f.stop()


def rows(stack, bucket_arn, namespace, table):
    s3tables = stack.aws["s3tables"]
    try:
        location = s3tables.get_table_metadata_location(
            tableBucketARN=bucket_arn, namespace=namespace, name=table).get("metadataLocation")
    except s3tables.exceptions.NotFoundException:
        return 0
    if not location:
        return 0
    properties = {"s3.endpoint": stack.aws["s3"].meta.endpoint_url, "s3.access-key-id": "testing",
                  "s3.secret-access-key": "testing", "s3.region": REGION, "s3.force-virtual-addressing": "false"}
    return StaticTable.from_metadata(location, properties=properties).scan().to_arrow().num_rows
