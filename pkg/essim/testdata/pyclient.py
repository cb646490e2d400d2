# Drives essim with Debian's python3-elasticsearch 7.17, the way a Python
# shipper would: info, helpers.bulk with create and fixed ids (twice, so
# the replay must be all 409s), refresh, count, search, a terms
# aggregation, get. Prints one JSON object for the Go test to check.
import json
import sys

from elasticsearch import Elasticsearch, helpers

url, index, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
es = Elasticsearch([url], http_auth=tuple(sys.argv[4].split(":", 1)) if len(sys.argv) > 4 else None)


def actions():
    for i in range(n):
        yield {"_op_type": "create", "_index": index, "_id": "doc-%d" % i,
               "_source": {"msg": "message %d" % i, "host": "h%d" % (i % 3), "seq": i}}


out = {"version": es.info()["version"]["number"]}
ok, errors = helpers.bulk(es, actions(), chunk_size=200, raise_on_error=False)
out["first"] = {"ok": ok, "errors": len(errors)}
ok, errors = helpers.bulk(es, actions(), chunk_size=200, raise_on_error=False)
out["replay"] = {"ok": ok, "errors": len(errors),
                 "statuses": sorted({e["create"]["status"] for e in errors}),
                 "types": sorted({e["create"]["error"]["type"] for e in errors})}
# Without ids every send is a new document: the duplicate path.
ok, _ = helpers.bulk(es, ({"_index": index + "-noid", "msg": "x"} for _ in range(10)), raise_on_error=False)
ok, _ = helpers.bulk(es, ({"_index": index + "-noid", "msg": "x"} for _ in range(10)), raise_on_error=False)
es.indices.refresh(index=index)
out["count"] = es.count(index=index)["count"]
out["count_noid"] = es.count(index=index + "-noid")["count"]
out["count_term"] = es.count(index=index, body={"query": {"term": {"host.keyword": "h1"}}})["count"]
res = es.search(index=index, body={"query": {"term": {"seq": 7}}, "size": 5})
out["search_hits"] = [h["_source"]["msg"] for h in res["hits"]["hits"]]
out["search_total"] = res["hits"]["total"]["value"]
agg = es.search(index=index, body={"size": 0, "aggs": {"hosts": {"terms": {"field": "host"}}}})
out["buckets"] = {b["key"]: b["doc_count"] for b in agg["aggregations"]["hosts"]["buckets"]}
out["get"] = es.get(index=index, id="doc-3")["_source"]["msg"]
try:
    es.get(index=index, id="missing")
    out["missing"] = "found?"
except Exception as e:  # NotFoundError
    out["missing"] = type(e).__name__
print(json.dumps(out))
