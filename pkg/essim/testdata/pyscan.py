# Reads a whole index past index.max_result_window with Debian's
# python3-elasticsearch 7.17 the two ways a client can: helpers.scan (the
# scroll API: search?scroll, _search/scroll, clear_scroll) and a
# composite aggregation paged with after_key. Prints one JSON object.
import json
import sys

from elasticsearch import Elasticsearch, helpers

url, index, field = sys.argv[1], sys.argv[2], sys.argv[3]
es = Elasticsearch([url])

out = {}
ids = set()
scanned = 0
for hit in helpers.scan(es, index=index, query={"query": {"match_all": {}}}, size=5000, scroll="1m"):
    scanned += 1
    ids.add(hit["_id"])
out["scanned"] = scanned
out["unique_ids"] = len(ids)

after, pages, buckets, copies = None, 0, 0, {}
while True:
    comp = {"size": 4000, "sources": [{"v": {"terms": {"field": field}}}]}
    if after is not None:
        comp["after"] = after
    res = es.search(index=index, body={"size": 0, "aggs": {"d": {"composite": comp}}})
    agg = res["aggregations"]["d"]
    if not agg["buckets"]:
        out["last_page_has_after_key"] = "after_key" in agg
        break
    pages += 1
    for b in agg["buckets"]:
        buckets += 1
        copies[b["doc_count"]] = copies.get(b["doc_count"], 0) + 1
    after = agg["after_key"]
out["pages"] = pages
out["buckets"] = buckets
out["copies"] = {str(k): v for k, v in copies.items()}
print(json.dumps(out))
