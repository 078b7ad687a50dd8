//! A plain text document as PDF (pdf-writer): A4 pages, Helvetica and
//! Helvetica-Bold (standard fonts, nothing embedded), lines wrapped to the page
//! width, pages numbered. What `fleetkey compliance report --format pdf` writes;
//! its text extracts with any PDF reader (the tests use `pdftotext`).

use pdf_writer::{Content, Name, Pdf, Rect, Ref, Str};

/// How a line is set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// The document's title.
    Title,
    /// A section heading.
    Heading,
    /// Body text.
    Body,
}

const PAGE: (f32, f32) = (595.0, 842.0);
const MARGIN: f32 = 50.0;
/// Characters per body line (Helvetica 9.5 pt across 495 pt, with room).
const WRAP: usize = 96;

fn size(s: Style) -> (f32, f32) {
    match s {
        Style::Title => (15.0, 22.0),
        Style::Heading => (11.0, 17.0),
        Style::Body => (9.5, 12.5),
    }
}

/// `text` as WinAnsi bytes: ASCII kept, a few typographic marks mapped, anything
/// else `?`.
fn win_ansi(text: &str) -> Vec<u8> {
    text.chars()
        .map(|c| match c {
            ' '..='~' => c as u8,
            '—' => 0x97,
            '–' => 0x96,
            '…' => 0x85,
            '’' => 0x92,
            '“' => 0x93,
            '”' => 0x94,
            '≤' | '≥' | '×' => b'?',
            _ => b'?',
        })
        .collect()
}

/// Splits `text` into lines of at most `width` characters at spaces.
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut line = String::new();
    for word in text.split(' ') {
        if !line.is_empty() && line.chars().count() + 1 + word.chars().count() > width {
            out.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    out.push(line);
    out
}

/// The document: `lines` in order, a new page whenever one fills.
pub fn render(lines: &[(Style, String)]) -> Vec<u8> {
    // Lay out: (page, style, y, text).
    let mut pages: Vec<Vec<(Style, f32, String)>> = vec![Vec::new()];
    let mut y = PAGE.1 - MARGIN;
    for (style, text) in lines {
        let (_, lead) = size(*style);
        let width = if *style == Style::Body { WRAP } else { 70 };
        for (i, piece) in wrap(text, width).into_iter().enumerate() {
            let gap = if i == 0 && *style != Style::Body {
                lead * 0.6
            } else {
                0.0
            };
            if y - lead - gap < MARGIN + 20.0 {
                pages.push(Vec::new());
                y = PAGE.1 - MARGIN;
            }
            y -= lead + gap;
            if let Some(p) = pages.last_mut() {
                p.push((*style, y, piece));
            }
        }
    }
    let mut pdf = Pdf::new();
    let catalog = Ref::new(1);
    let tree = Ref::new(2);
    let regular = Ref::new(3);
    let bold = Ref::new(4);
    let first_page = 10;
    let page_ids: Vec<Ref> = (0..pages.len())
        .map(|i| Ref::new(first_page + 2 * i32::try_from(i).unwrap_or(0)))
        .collect();
    pdf.catalog(catalog).pages(tree);
    pdf.pages(tree)
        .kids(page_ids.iter().copied())
        .count(i32::try_from(pages.len()).unwrap_or(i32::MAX));
    pdf.type1_font(regular)
        .base_font(Name(b"Helvetica"))
        .encoding_predefined(Name(b"WinAnsiEncoding"));
    pdf.type1_font(bold)
        .base_font(Name(b"Helvetica-Bold"))
        .encoding_predefined(Name(b"WinAnsiEncoding"));
    let total = pages.len();
    for (n, (items, id)) in pages.iter().zip(&page_ids).enumerate() {
        let content_id = Ref::new(id.get() + 1);
        let mut page = pdf.page(*id);
        page.parent(tree)
            .media_box(Rect::new(0.0, 0.0, PAGE.0, PAGE.1))
            .contents(content_id);
        page.resources()
            .fonts()
            .pair(Name(b"F1"), regular)
            .pair(Name(b"F2"), bold);
        drop(page);
        let mut c = Content::new();
        for (style, y, text) in items {
            let (pt, _) = size(*style);
            let font = if *style == Style::Body { b"F1" } else { b"F2" };
            c.begin_text()
                .set_font(Name(font), pt)
                .next_line(MARGIN, *y)
                .show(Str(&win_ansi(text)))
                .end_text();
        }
        let footer = format!("page {} of {total}", n + 1);
        c.begin_text()
            .set_font(Name(b"F1"), 8.0)
            .next_line(PAGE.0 - MARGIN - 50.0, MARGIN - 20.0)
            .show(Str(footer.as_bytes()))
            .end_text();
        let bytes = c.finish();
        pdf.stream(content_id, &bytes);
    }
    pdf.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_documents_wrap_and_page() {
        let mut lines = vec![(Style::Title, "Report".to_owned())];
        for i in 0..200 {
            lines.push((Style::Body, format!("line {i} {}", "word ".repeat(30))));
        }
        let pdf = render(&lines);
        assert!(pdf.starts_with(b"%PDF-"));
        let text = String::from_utf8_lossy(&pdf);
        assert!(
            text.matches("/Type /Page\n").count() > 3 || text.matches("/Type /Page").count() > 4
        );
        assert_eq!(wrap("a bb ccc", 4), ["a bb", "ccc"]);
        assert_eq!(win_ansi("a—b✓"), vec![b'a', 0x97, b'b', b'?']);
    }
}
