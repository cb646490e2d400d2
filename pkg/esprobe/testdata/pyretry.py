# Seed 003 with a real client: python3-elasticsearch 7.17 with
# retry_on_timeout resends a bulk that timed out while the cluster was
# still indexing it. ARGV: url, index, events, mode ("noid" or "create").
# Prints the exception the client finally raised (or "ok").
import sys

from elasticsearch import Elasticsearch, helpers

url, index, n, mode = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
es = Elasticsearch([url], timeout=1.0, max_retries=2, retry_on_timeout=True)


def actions():
    for i in range(n):
        a = {"_index": index, "_source": {"request_id": "req-%d" % i, "message": "event %d" % i}}
        if mode == "create":
            a["_op_type"], a["_id"] = "create", "req-%d" % i
        yield a


try:
    helpers.bulk(es, actions(), raise_on_error=False)
    print("ok")
except Exception as e:
    print(type(e).__name__)
