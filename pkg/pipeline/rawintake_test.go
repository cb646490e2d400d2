package pipeline

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/logdoctor/logdoctor/pkg/essim"
	"github.com/logdoctor/logdoctor/pkg/forward"
)

// TestForwardIDsFromStoredRecords: forward events are buffered as sent and
// get their document and _id at delivery; the _id is still eventID over
// tag, event time and the msgpack record, the value the pipeline gave
// before the work left the intake path, so a shipper resending across an
// upgrade or a replay after a crash is answered 409. With --id-key the
// id comes from the field, taken at intake.
func TestForwardIDsFromStoredRecords(t *testing.T) {
	for _, idKey := range []string{"", "req"} {
		t.Run("id-key="+idKey, func(t *testing.T) {
			es := startES(t, "", essim.Config{})
			p := startPipeline(t, Config{ES: esConfig(es), IDKey: idKey})
			conn, err := forward.Dial(context.Background(), p.ForwardAddr().String(), forward.ClientConfig{})
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			req := &forward.Request{Tag: "raw.ids", Mode: forward.ModePacked, Chunk: forward.NewChunkID()}
			want := map[string]string{} // msg -> _id
			for i := 0; i < 5; i++ {
				msg := fmt.Sprint("event-", i)
				rec, err := msgpack.Marshal(map[string]any{"msg": msg, "req": fmt.Sprint("r", i)})
				if err != nil {
					t.Fatal(err)
				}
				et := forward.EventTime{Sec: 1763719200, Nsec: uint32(i * 1000)}
				req.Entries = append(req.Entries, forward.Entry{Time: et, Record: rec})
				want[msg] = eventID(req.Tag, int64(et.Sec), et.Nsec, rec)
				if idKey != "" {
					want[msg] = fmt.Sprint("r", i)
				}
			}
			if err := conn.Send(req, 10*time.Second); err != nil {
				t.Fatal(err)
			}
			// The same chunk again, as a shipper resends it after a lost ack.
			req.Chunk = forward.NewChunkID()
			if err := conn.Send(req, 10*time.Second); err != nil {
				t.Fatal(err)
			}
			flush(t, p, 10*time.Second)
			docs := esDocs(t, es.URL(), "logs-raw.ids-*", 100)
			if len(docs) != len(want) {
				t.Fatalf("%d documents, want %d", len(docs), len(want))
			}
			for _, d := range docs {
				msg, _ := d["msg"].(string)
				if d["_id"] != want[msg] || d["tag"] != "raw.ids" || d["@timestamp"] == nil {
					t.Errorf("document %v: want _id %s", d, want[msg])
				}
			}
			if st := p.Stats(); st.Output.Indexed != 5 || st.Output.Duplicates != 5 {
				t.Errorf("indexed %d, already indexed %d; want 5 and 5", st.Output.Indexed, st.Output.Duplicates)
			}
		})
	}
}
