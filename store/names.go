package store

import (
	"database/sql/driver"
	"encoding/json"
	"fmt"

	"golang.org/x/text/language"
)

// Names holds one text in other languages than English, by BCP 47 code
// ("zh-CN"). The catalog writes them beside its English fields, and
// PostgreSQL keeps them as jsonb, so that the admin shows them too.
type Names map[string]string

// maxLangCodeLen bounds a language code (BCP 47 allows long ones).
const maxLangCodeLen = 35

// In returns the text in language code, else english.
func (n Names) In(code, english string) string {
	if s := n[code]; s != "" {
		return s
	}
	return english
}

// validate checks every code and text as the English field is checked.
func (n Names) validate(limit int) error {
	for code, text := range n {
		if len(code) > maxLangCodeLen {
			return fmt.Errorf("language code %.40q too long", code)
		}
		if tag, err := language.Parse(code); err != nil || tag.String() != code {
			return fmt.Errorf("bad language code %q: want a BCP 47 tag such as zh-CN", code)
		}
		if err := checkText(code, text, limit); err != nil {
			return err
		}
	}
	return nil
}

// Scan reads a jsonb column (NULL reads as none).
func (n *Names) Scan(src any) error {
	var b []byte
	switch v := src.(type) {
	case nil:
		*n = nil
		return nil
	case []byte:
		b = v
	case string:
		b = []byte(v)
	default:
		return fmt.Errorf("names: cannot scan %T", src)
	}
	return json.Unmarshal(b, n)
}

// Value writes the names as JSON for a jsonb column.
func (n Names) Value() (driver.Value, error) {
	if n == nil {
		return "{}", nil
	}
	b, err := json.Marshal(map[string]string(n))
	return string(b), err
}
