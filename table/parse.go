package table

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strconv"
	"strings"

	yaml3 "sigs.k8s.io/yaml/goyaml.v3"
)

// kind is the kind of a parsed value.
type kind uint8

const (
	kNull kind = iota
	kBool
	kNum  // a number as written
	kStr  // a string
	kText // a CSV cell: text that the field's type reads
	kList
	kMap
)

// node is a value parsed from a file, with where it starts. The three
// formats parse to nodes, and one decoder turns nodes into rows, so the
// rules and the errors are the same for all of them.
type node struct {
	kind kind
	// loose: a YAML scalar, whose text a string field takes whatever
	// its tag (name: 123 is the string "123").
	loose bool
	text  string
	list  []*node
	keys  []*node // a map's keys (kStr or kText), in file order
	vals  []*node
	line  int
	col   int
}

// format is a table file's format.
type format uint8

const (
	formatJSON format = iota + 1
	formatYAML
	formatCSV
)

func (f format) String() string {
	switch f {
	case formatJSON:
		return "JSON"
	case formatYAML:
		return "YAML"
	case formatCSV:
		return "CSV"
	}
	return "?"
}

// formatOf returns the format a file name's extension says.
func formatOf(name string) (format, bool) {
	i := strings.LastIndexByte(name, '.')
	if i < 0 {
		return 0, false
	}
	switch strings.ToLower(name[i:]) {
	case ".json":
		return formatJSON, true
	case ".yaml", ".yml":
		return formatYAML, true
	case ".csv":
		return formatCSV, true
	}
	return 0, false
}

// maxDepth bounds the nesting of a row's values.
const maxDepth = 64

// parseRows parses a table file into its rows: a list of maps. Problems
// go to d, with the file's name.
func parseRows(d *decoder, f format, data []byte) []*node {
	switch f {
	case formatJSON:
		return parseJSON(d, data)
	case formatYAML:
		return parseYAML(d, data)
	case formatCSV:
		return parseCSV(d, data)
	}
	d.failAt(0, 0, "", "unknown format")
	return nil
}

// lines maps byte offsets to lines and columns (1-based).
type lines []int // the offset where each line starts

func newLines(data []byte) lines {
	ls := lines{0}
	for i, b := range data {
		if b == '\n' {
			ls = append(ls, i+1)
		}
	}
	return ls
}

func (ls lines) at(off int) (line, col int) {
	i := sort.Search(len(ls), func(i int) bool { return ls[i] > off }) - 1
	if i < 0 {
		i = 0
	}
	return i + 1, off - ls[i] + 1
}

// jsonParser builds nodes from encoding/json's tokens, with the position
// of each token's first byte.
type jsonParser struct {
	data  []byte
	dec   *json.Decoder
	lines lines
}

// start returns the offset of the next token: after the previous one, its
// white space, commas and colons.
func (p *jsonParser) start() int {
	i := int(p.dec.InputOffset())
	for i < len(p.data) {
		switch p.data[i] {
		case ' ', '\t', '\r', '\n', ',', ':':
			i++
			continue
		}
		break
	}
	return i
}

// jsonError is a syntax error at an offset.
type jsonError struct {
	off int
	msg string
}

func (p *jsonParser) fail(off int, err error) *jsonError {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return &jsonError{int(se.Offset), se.Error()}
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return &jsonError{len(p.data), "unexpected end of the file"}
	}
	return &jsonError{off, err.Error()}
}

func (p *jsonParser) value(depth int) (*node, *jsonError) {
	off := p.start()
	line, col := p.lines.at(off)
	if depth > maxDepth {
		return nil, &jsonError{off, fmt.Sprintf("nested more than %d deep", maxDepth)}
	}
	tok, err := p.dec.Token()
	if err != nil {
		return nil, p.fail(off, err)
	}
	n := &node{line: line, col: col}
	switch t := tok.(type) {
	case nil:
		n.kind = kNull
	case bool:
		n.kind, n.text = kBool, fmt.Sprint(t)
	case json.Number:
		n.kind, n.text = kNum, string(t)
	case string:
		n.kind, n.text = kStr, t
	case json.Delim:
		switch t {
		case '[':
			n.kind = kList
			for p.dec.More() {
				e, jerr := p.value(depth + 1)
				if jerr != nil {
					return nil, jerr
				}
				n.list = append(n.list, e)
			}
		case '{':
			n.kind = kMap
			seen := make(map[string]bool)
			for p.dec.More() {
				koff := p.start()
				kl, kc := p.lines.at(koff)
				kt, err := p.dec.Token()
				if err != nil {
					return nil, p.fail(koff, err)
				}
				k, ok := kt.(string)
				if !ok {
					return nil, &jsonError{koff, "a key is not a string"}
				}
				if seen[k] {
					return nil, &jsonError{koff, fmt.Sprintf("key %q is already set in this object", k)}
				}
				seen[k] = true
				v, jerr := p.value(depth + 1)
				if jerr != nil {
					return nil, jerr
				}
				n.keys = append(n.keys, &node{kind: kStr, text: k, line: kl, col: kc})
				n.vals = append(n.vals, v)
			}
		}
		if _, err := p.dec.Token(); err != nil { // the closing delimiter
			return nil, p.fail(p.start(), err)
		}
	}
	return n, nil
}

// parseJSON parses an array of objects.
func parseJSON(d *decoder, data []byte) []*node {
	p := &jsonParser{data: data, dec: json.NewDecoder(bytes.NewReader(data)), lines: newLines(data)}
	p.dec.UseNumber()
	root, jerr := p.value(0)
	if jerr == nil {
		if off := p.start(); off < len(data) {
			jerr = &jsonError{off, "data after the array"}
		}
	}
	if jerr != nil {
		line, col := p.lines.at(min(jerr.off, len(data)))
		d.failAt(line, col, "", "%s", strings.TrimPrefix(jerr.msg, "json: "))
		return nil
	}
	return rowsOf(d, root, "an array of objects")
}

// rowsOf checks that root is a list of maps.
func rowsOf(d *decoder, root *node, want string) []*node {
	if root == nil || root.kind == kNull {
		return nil // an empty file: no rows
	}
	if root.kind != kList {
		d.failAt(root.line, root.col, "", "the file is not %s", want)
		return nil
	}
	for i, r := range root.list {
		if r.kind != kMap {
			d.failAt(r.line, r.col, "", "row %d is not %s", i+1, strings.TrimPrefix(strings.TrimPrefix(want, "an array of "), "a sequence of "))
			return nil
		}
	}
	return root.list
}

// parseYAML parses a sequence of mappings.
func parseYAML(d *decoder, data []byte) []*node {
	var doc yaml3.Node
	if err := yaml3.Unmarshal(data, &doc); err != nil {
		msg, line := strings.TrimPrefix(err.Error(), "yaml: "), 0
		if m := yamlLine.FindStringSubmatch(msg); m != nil {
			line, _ = strconv.Atoi(m[1])
			msg = m[2]
		}
		d.failAt(line, 0, "", "%s", msg)
		return nil
	}
	if len(doc.Content) == 0 {
		return nil
	}
	// Aliases are expanded: bound what they can expand to.
	budget := 16*len(data) + 1024
	root, err := fromYAML(doc.Content[0], 0, &budget)
	if err != nil {
		d.failAt(err.line, err.col, "", "%s", err.msg)
		return nil
	}
	return rowsOf(d, root, "a sequence of mappings")
}

// yamlLine is the line number at the start of a YAML syntax error.
var yamlLine = regexp.MustCompile(`^line (\d+): (.*)$`)

type yamlError struct {
	line, col int
	msg       string
}

func fromYAML(y *yaml3.Node, depth int, budget *int) (*node, *yamlError) {
	if *budget--; *budget < 0 {
		return nil, &yamlError{y.Line, y.Column, "too many values (aliases expand to more than the file can hold)"}
	}
	if depth > maxDepth {
		return nil, &yamlError{y.Line, y.Column, fmt.Sprintf("nested more than %d deep", maxDepth)}
	}
	n := &node{line: y.Line, col: y.Column}
	switch y.Kind {
	case yaml3.AliasNode:
		if y.Alias == nil {
			return nil, &yamlError{y.Line, y.Column, "an alias to nothing"}
		}
		a, err := fromYAML(y.Alias, depth+1, budget)
		if err != nil {
			return nil, err
		}
		c := *a
		c.line, c.col = y.Line, y.Column
		return &c, nil
	case yaml3.SequenceNode:
		n.kind = kList
		for _, e := range y.Content {
			v, err := fromYAML(e, depth+1, budget)
			if err != nil {
				return nil, err
			}
			n.list = append(n.list, v)
		}
	case yaml3.MappingNode:
		n.kind = kMap
		seen := make(map[string]bool)
		for i := 0; i+1 < len(y.Content); i += 2 {
			k, v := y.Content[i], y.Content[i+1]
			if k.Tag == "!!merge" {
				return nil, &yamlError{k.Line, k.Column, "merge keys (<<) are not supported"}
			}
			if k.Kind != yaml3.ScalarNode {
				return nil, &yamlError{k.Line, k.Column, "a key must be a plain value"}
			}
			if seen[k.Value] {
				return nil, &yamlError{k.Line, k.Column, fmt.Sprintf("key %q is already set in this mapping", k.Value)}
			}
			seen[k.Value] = true
			vn, err := fromYAML(v, depth+1, budget)
			if err != nil {
				return nil, err
			}
			n.keys = append(n.keys, &node{kind: kStr, text: k.Value, line: k.Line, col: k.Column})
			n.vals = append(n.vals, vn)
		}
	case yaml3.ScalarNode:
		n.loose, n.text = true, y.Value
		switch y.ShortTag() {
		case "!!null":
			n.kind = kNull
		case "!!bool":
			var b bool
			if err := y.Decode(&b); err != nil {
				return nil, &yamlError{y.Line, y.Column, err.Error()}
			}
			n.kind, n.text = kBool, fmt.Sprint(b)
		case "!!int", "!!float":
			n.kind = kNum
		default:
			n.kind = kStr
		}
	case yaml3.DocumentNode:
		if len(y.Content) == 0 {
			n.kind = kNull
			return n, nil
		}
		return fromYAML(y.Content[0], depth, budget)
	default:
		return nil, &yamlError{y.Line, y.Column, "unexpected YAML"}
	}
	return n, nil
}

// bom is the UTF-8 byte-order mark that spreadsheets put first.
var bom = []byte{0xEF, 0xBB, 0xBF}

// parseCSV parses a header row and rows of cells into maps of kText
// cells keyed by the header's names.
func parseCSV(d *decoder, data []byte) []*node {
	skip := 0
	if bytes.HasPrefix(data, bom) {
		skip = len(bom)
	}
	r := csv.NewReader(bytes.NewReader(data[skip:]))
	r.ReuseRecord = false
	header, err := r.Read()
	if errors.Is(err, io.EOF) {
		return nil // an empty file: no rows
	}
	if err != nil {
		csvFail(d, err)
		return nil
	}
	names := make([]*node, len(header))
	seen := make(map[string]int)
	for i, h := range header {
		line, col := r.FieldPos(i)
		h = strings.TrimSpace(h)
		if h == "" {
			d.failAt(line, col, "", "column %d of the header has no name", i+1)
			return nil
		}
		if j, dup := seen[strings.ToLower(h)]; dup {
			d.failAt(line, col, "", "column %d of the header, %q, is also column %d", i+1, h, j+1)
			return nil
		}
		seen[strings.ToLower(h)] = i
		names[i] = &node{kind: kStr, text: h, line: line, col: col}
	}
	var rows []*node
	for {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			return rows
		}
		if err != nil {
			csvFail(d, err)
			return nil
		}
		empty := true
		for _, c := range rec {
			if strings.TrimSpace(c) != "" {
				empty = false
				break
			}
		}
		if empty {
			continue
		}
		line, _ := r.FieldPos(0)
		row := &node{kind: kMap, line: line, col: 1, keys: names, vals: make([]*node, len(rec))}
		for i, c := range rec {
			l, col := r.FieldPos(i)
			row.vals[i] = &node{kind: kText, text: c, line: l, col: col}
		}
		rows = append(rows, row)
	}
}

// csvFail reports a CSV syntax error at its line and column.
func csvFail(d *decoder, err error) {
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		msg := pe.Err.Error()
		if errors.Is(pe.Err, csv.ErrFieldCount) {
			msg = "the row's cell count is not the header's"
		}
		d.failAt(pe.Line, pe.Column, "", "%s", msg)
		return
	}
	d.failAt(0, 0, "", "%v", err)
}
