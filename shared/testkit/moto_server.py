"""moto's server, with two S3 Tables replies fixed so the AWS SDK for Rust accepts them.

moto 5.2 answers GetTable with `"managedByService": false` (the API's field is a
string naming the managing service; the Rust SDK refuses a boolean, so every
create/load/commit fails to deserialise), and UpdateTableMetadataLocation with
`"namespace"` as a string and `"tableArn"` (the API has a list, and `tableARN`).
Both are rewritten here before the reply leaves; everything else is moto as
released. Run it as moto_server: `python moto_server.py -H 127.0.0.1 -p PORT`.
"""

import json
import sys

from moto.s3tables.responses import S3TablesResponse
from moto.server import main


def _rewrite(method, fix):
    def patched(self, *args, **kwargs):
        status, headers, body = method(self, *args, **kwargs)
        try:
            reply = json.loads(body)
        except (TypeError, ValueError):
            return status, headers, body
        fix(reply)
        return status, headers, json.dumps(reply)

    return patched


def _fix_get_table(reply):
    if not isinstance(reply.get("managedByService"), str):
        reply.pop("managedByService", None)


def _fix_update_table_metadata_location(reply):
    if isinstance(reply.get("namespace"), str):
        reply["namespace"] = [reply["namespace"]]
    if "tableArn" in reply:
        reply["tableARN"] = reply.pop("tableArn")


S3TablesResponse.get_table = _rewrite(S3TablesResponse.get_table, _fix_get_table)
S3TablesResponse.update_table_metadata_location = _rewrite(
    S3TablesResponse.update_table_metadata_location, _fix_update_table_metadata_location
)

if __name__ == "__main__":
    sys.exit(main())
