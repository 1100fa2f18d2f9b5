package specschema

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"gopkg.in/yaml.v3"
)

// Validator checks response bodies against the spec's schemas. The spec
// writes its schemas in YAML and refers between files with relative
// $refs (definitions/..., ../../event-schemas/...), so the compiler loads
// files through a YAML loader and each schema is compiled at its JSON
// pointer inside the OpenAPI file.
type Validator struct {
	specDir string
	ops     map[string]Operation // by operationId

	mu       sync.Mutex
	compiler *jsonschema.Compiler
	docs     map[string]any // parsed spec files, by path
	schemas  map[string]*jsonschema.Schema
}

// NewValidator reads the operations of a matrix-spec checkout.
func NewValidator(specDir string) (*Validator, error) {
	ops, err := Operations(specDir)
	if err != nil {
		return nil, err
	}
	v := &Validator{
		specDir: specDir,
		ops:     make(map[string]Operation, len(ops)),
		docs:    map[string]any{},
		schemas: map[string]*jsonschema.Schema{},
	}
	for _, op := range ops {
		v.ops[op.OperationID] = op
	}
	v.compiler = jsonschema.NewCompiler()
	v.compiler.DefaultDraft(jsonschema.Draft2020)
	v.compiler.UseLoader(jsonschema.SchemeURLLoader{"file": yamlLoader{v}})
	return v, nil
}

// Validate checks body, the answer of operationID with HTTP status, against
// the schema the spec gives for it.
func (v *Validator) Validate(operationID string, status int, body []byte) error {
	schema, err := v.schema(operationID, status)
	if err != nil {
		return err
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("%s %d: body is not JSON: %w", operationID, status, err)
	}
	if err := schema.Validate(inst); err != nil {
		return fmt.Errorf("%s %d: %w", operationID, status, err)
	}
	return nil
}

func (v *Validator) schema(operationID string, status int) (*jsonschema.Schema, error) {
	op, ok := v.ops[operationID]
	if !ok {
		return nil, fmt.Errorf("no operation %q in the spec", operationID)
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	cacheKey := operationID + " " + strconv.Itoa(status)
	if s, ok := v.schemas[cacheKey]; ok {
		return s, nil
	}
	file := filepath.Join(v.specDir, ClientServerDir, op.File)
	ptr, err := v.responseSchemaPointer(file, op, status)
	if err != nil {
		return nil, err
	}
	s, err := v.compiler.Compile(fileURL(file) + "#" + fragment(ptr))
	if err != nil {
		return nil, fmt.Errorf("compile schema of %s %d: %w", operationID, status, err)
	}
	v.schemas[cacheKey] = s
	return s, nil
}

// responseSchemaPointer finds the JSON pointer of the response body schema,
// following a response-level $ref ("#/components/responses/...") within
// the file. Called with mu held.
func (v *Validator) responseSchemaPointer(file string, op Operation, status int) (string, error) {
	doc, err := v.doc(file)
	if err != nil {
		return "", err
	}
	ptr := "/paths/" + escape(op.FilePath) + "/" + strings.ToLower(op.Method) + "/responses/" + strconv.Itoa(status)
	resp, ok := lookup(doc, ptr)
	if !ok {
		return "", fmt.Errorf("%s: the spec gives no %d response", op.OperationID, status)
	}
	if m, ok := resp.(map[string]any); ok {
		if ref, ok := m["$ref"].(string); ok {
			local, found := strings.CutPrefix(ref, "#")
			if !found {
				return "", fmt.Errorf("%s %d: response $ref %q to another file is not supported", op.OperationID, status, ref)
			}
			ptr = local
		}
	}
	ptr += "/content/application~1json/schema"
	if _, ok := lookup(doc, ptr); !ok {
		return "", fmt.Errorf("%s: the %d response has no JSON schema", op.OperationID, status)
	}
	return ptr, nil
}

// doc parses a spec file once. Called with mu held.
func (v *Validator) doc(path string) (any, error) {
	if d, ok := v.docs[path]; ok {
		return d, nil
	}
	d, err := readYAML(path)
	if err != nil {
		return nil, err
	}
	v.docs[path] = d
	return d, nil
}

// yamlLoader gives the schema compiler the spec's YAML files as JSON
// values.
type yamlLoader struct{ v *Validator }

func (l yamlLoader) Load(u string) (any, error) {
	path, err := jsonschema.FileLoader{}.ToFile(u)
	if err != nil {
		return nil, err
	}
	// Compile runs with mu held (from schema), so the cache is safe here.
	return l.v.doc(path)
}

func readYAML(path string) (any, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read spec file: %w", err)
	}
	var raw any
	if err := yaml.Unmarshal(data, &raw); err != nil {
		return nil, fmt.Errorf("parse %s: %w", path, err)
	}
	// Through JSON, so that keys are strings and numbers are what the
	// validator expects.
	js, err := json.Marshal(jsonCompatible(raw))
	if err != nil {
		return nil, fmt.Errorf("convert %s to JSON: %w", path, err)
	}
	return jsonschema.UnmarshalJSON(bytes.NewReader(js))
}

// jsonCompatible turns YAML maps with non-string keys (an unquoted 200)
// into string-keyed maps.
func jsonCompatible(v any) any {
	switch t := v.(type) {
	case map[string]any:
		for k, e := range t {
			t[k] = jsonCompatible(e)
		}
		return t
	case map[any]any:
		m := make(map[string]any, len(t))
		for k, e := range t {
			m[fmt.Sprint(k)] = jsonCompatible(e)
		}
		return m
	case []any:
		for i, e := range t {
			t[i] = jsonCompatible(e)
		}
		return t
	}
	return v
}

// lookup follows a JSON pointer in a parsed document.
func lookup(doc any, ptr string) (any, bool) {
	cur := doc
	for _, tok := range strings.Split(strings.TrimPrefix(ptr, "/"), "/") {
		tok = strings.NewReplacer("~1", "/", "~0", "~").Replace(tok)
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = m[tok]; !ok {
			return nil, false
		}
	}
	return cur, true
}

// escape makes a JSON pointer token of a path ("/rooms/{roomId}" →
// "~1rooms~1{roomId}", RFC 6901).
func escape(tok string) string {
	return strings.NewReplacer("~", "~0", "/", "~1").Replace(tok)
}

// fragment URL-escapes a JSON pointer's tokens ("{" → "%7B") for use in a
// URL fragment.
func fragment(ptr string) string {
	toks := strings.Split(ptr, "/")
	for i, t := range toks {
		toks[i] = url.PathEscape(t)
	}
	return strings.Join(toks, "/")
}

func fileURL(path string) string {
	abs, err := filepath.Abs(path)
	if err != nil {
		abs = path
	}
	return (&url.URL{Scheme: "file", Path: filepath.ToSlash(abs)}).String()
}
