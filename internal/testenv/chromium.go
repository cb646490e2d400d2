package testenv

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"image"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// Page is what a real browser made of an HTML file: the DOM it built, a
// screenshot, and every URL it requested while loading.
type Page struct {
	DOM        string
	PNG        []byte
	Requests   []string
	ConsoleErr []string
}

// LoadInChromium opens file in headless Chromium (Debian's chromium,
// installed by scripts/test-deps.sh) with JavaScript disabled, and returns
// the rendered DOM, a full-page PNG screenshot and the requests the page
// made. It drives the browser over the DevTools protocol on a pipe
// (--remote-debugging-pipe): Emulation.setScriptExecutionDisabled is the
// switch for "JavaScript off", which --blink-settings cannot be combined
// with --dump-dom for.
func LoadInChromium(t testing.TB, file string) Page {
	t.Helper()
	RequireCommands(t, "chromium")
	abs, err := filepath.Abs(file)
	if err != nil {
		t.Fatal(err)
	}
	// fd 3: what Chromium reads (our requests); fd 4: what it writes.
	toR, toW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	fromR, fromW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	profile := t.TempDir()
	cmd := exec.Command("chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
		"--no-first-run", "--no-default-browser-check", "--disable-extensions", "--disable-background-networking",
		"--disable-component-update", "--disable-sync", "--user-data-dir="+profile, "--remote-debugging-pipe",
		"--window-size=1280,900", "about:blank")
	cmd.ExtraFiles = []*os.File{toR, fromW}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	toR.Close()
	fromW.Close()
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	defer func() {
		toW.Close()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		fromR.Close()
	}()

	c := &cdp{w: toW, pending: map[int]chan cdpMsg{}, events: make(chan cdpMsg, 256)}
	go c.readLoop(bufio.NewReader(fromR))
	deadline := time.Now().Add(60 * time.Second)
	call := func(session, method string, params any) json.RawMessage {
		t.Helper()
		res, err := c.call(session, method, params, time.Until(deadline))
		if err != nil {
			t.Fatalf("chromium %s: %v\nstderr:\n%s", method, err, tail(stderr.String()))
		}
		return res
	}
	var created struct {
		TargetID string `json:"targetId"`
	}
	mustJSON(t, call("", "Target.createTarget", map[string]any{"url": "about:blank"}), &created)
	var attached struct {
		SessionID string `json:"sessionId"`
	}
	mustJSON(t, call("", "Target.attachToTarget", map[string]any{"targetId": created.TargetID, "flatten": true}), &attached)
	s := attached.SessionID
	call(s, "Emulation.setScriptExecutionDisabled", map[string]any{"value": true})
	call(s, "Network.enable", map[string]any{})
	call(s, "Runtime.enable", map[string]any{})
	call(s, "Page.enable", map[string]any{})
	call(s, "Page.navigate", map[string]any{"url": "file://" + abs})
	var page Page
	for loaded := false; !loaded; {
		select {
		case ev := <-c.events:
			switch ev.Method {
			case "Page.loadEventFired":
				loaded = true
			case "Network.requestWillBeSent":
				page.Requests = append(page.Requests, requestURL(ev.Params))
			case "Runtime.exceptionThrown", "Runtime.consoleAPICalled":
				page.ConsoleErr = append(page.ConsoleErr, string(ev.Params))
			}
		case <-time.After(time.Until(deadline)):
			t.Fatalf("chromium: page did not load in time\nstderr:\n%s", tail(stderr.String()))
		}
	}
	var doc struct {
		Root struct {
			NodeID int `json:"nodeId"`
		} `json:"root"`
	}
	mustJSON(t, call(s, "DOM.getDocument", map[string]any{"depth": -1}), &doc)
	var outer struct {
		OuterHTML string `json:"outerHTML"`
	}
	mustJSON(t, call(s, "DOM.getOuterHTML", map[string]any{"nodeId": doc.Root.NodeID}), &outer)
	page.DOM = outer.OuterHTML
	var shot struct {
		Data string `json:"data"`
	}
	mustJSON(t, call(s, "Page.captureScreenshot", map[string]any{"format": "png", "captureBeyondViewport": true}), &shot)
	if page.PNG, err = base64.StdEncoding.DecodeString(shot.Data); err != nil {
		t.Fatalf("chromium screenshot: %v", err)
	}
	// Requests made after load (none expected) still count.
	for drained := false; !drained; {
		select {
		case ev := <-c.events:
			if ev.Method == "Network.requestWillBeSent" {
				page.Requests = append(page.Requests, requestURL(ev.Params))
			}
		default:
			drained = true
		}
	}
	_, _ = c.call("", "Browser.close", map[string]any{}, 5*time.Second)
	return page
}

// requestURL is the URL of a Network.requestWillBeSent event's request.
func requestURL(params json.RawMessage) string {
	var p struct {
		Request struct {
			URL string `json:"url"`
		} `json:"request"`
	}
	_ = json.Unmarshal(params, &p)
	return p.Request.URL
}

func mustJSON(t testing.TB, b json.RawMessage, v any) {
	t.Helper()
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("chromium: %v in %s", err, b)
	}
}

func tail(s string) string {
	if len(s) > 4000 {
		return s[len(s)-4000:]
	}
	return s
}

// cdp is a minimal DevTools protocol client over Chromium's pipe: JSON
// messages ended by a NUL byte.
type cdp struct {
	mu      sync.Mutex
	w       *os.File
	next    int
	pending map[int]chan cdpMsg
	events  chan cdpMsg
}

type cdpMsg struct {
	ID        int             `json:"id,omitempty"`
	Method    string          `json:"method,omitempty"`
	SessionID string          `json:"sessionId,omitempty"`
	Params    json.RawMessage `json:"params,omitempty"`
	Result    json.RawMessage `json:"result,omitempty"`
	Error     *struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"error,omitempty"`
}

func (c *cdp) readLoop(r *bufio.Reader) {
	for {
		b, err := r.ReadBytes(0)
		if err != nil {
			c.mu.Lock()
			for id, ch := range c.pending {
				close(ch)
				delete(c.pending, id)
			}
			c.mu.Unlock()
			return
		}
		var m cdpMsg
		if json.Unmarshal(b[:len(b)-1], &m) != nil {
			continue
		}
		if m.ID != 0 {
			c.mu.Lock()
			ch := c.pending[m.ID]
			delete(c.pending, m.ID)
			c.mu.Unlock()
			if ch != nil {
				ch <- m
			}
			continue
		}
		select {
		case c.events <- m:
		default: // a flood of events we do not read: drop
		}
	}
}

func (c *cdp) call(session, method string, params any, timeout time.Duration) (json.RawMessage, error) {
	c.mu.Lock()
	c.next++
	id := c.next
	ch := make(chan cdpMsg, 1)
	c.pending[id] = ch
	c.mu.Unlock()
	req := map[string]any{"id": id, "method": method, "params": params}
	if session != "" {
		req["sessionId"] = session
	}
	b, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	if _, err := c.w.Write(append(b, 0)); err != nil {
		return nil, fmt.Errorf("write: %w", err)
	}
	select {
	case m, ok := <-ch:
		if !ok {
			return nil, fmt.Errorf("browser closed the pipe")
		}
		if m.Error != nil {
			return nil, fmt.Errorf("%s: %d %s", method, m.Error.Code, m.Error.Message)
		}
		return m.Result, nil
	case <-time.After(timeout):
		return nil, fmt.Errorf("%s: no answer in %s", method, timeout)
	}
}

// InkRatio is the share of a PNG's pixels that differ from its top-left
// pixel (the page background): 0 for a blank screenshot.
func InkRatio(png []byte) (float64, error) {
	img, err := decodePNG(png)
	if err != nil {
		return 0, err
	}
	b := img.Bounds()
	bg := img.At(b.Min.X, b.Min.Y)
	br, bgc, bb, _ := bg.RGBA()
	ink, total := 0, 0
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			total++
			if r != br || g != bgc || bl != bb {
				ink++
			}
		}
	}
	if total == 0 {
		return 0, nil
	}
	return float64(ink) / float64(total), nil
}

func decodePNG(b []byte) (image.Image, error) { return png.Decode(bytes.NewReader(b)) }
