"""Build the binary and legacy-encoded files of the bundled sample corpus (docs_corpus/).

The plain .md/.txt/.html documents are checked in as they are. The files made here cannot be
written by hand: a PDF and a DOCX, and two Korean text files in legacy encodings (cp949 and
euc-kr). All text lives in this script, and dates and zip timestamps are fixed, so running it
again gives byte-identical files.

    .venv/bin/python scripts/make_corpus_files.py [--out docs_corpus]
"""

from __future__ import annotations

import argparse
import io
import zipfile
from datetime import UTC, datetime
from pathlib import Path

FIXED_DATE = datetime(2025, 1, 15, 9, 0, 0, tzinfo=UTC)
ZIP_DATE = (2025, 1, 15, 9, 0, 0)

# Mini markup shared by the PDF and DOCX texts: blocks are separated by blank lines, the lines of a
# block are joined with a space; "# " is a title, "## " a heading and "- " a bullet item.

PDF_PAGES = [
    """
# Hanbit City Library - Main Library Visitor Guide 2025

Welcome to the Main Library at 88 Byeolbit-ro. This page explains the building, the wireless
network and the public computers. Page 2 lists our prices, and page 3 explains how to get here.

## Floor guide

- Roof: Haneul Madang garden

- 5F: Periodicals, Hanbit Memory Room (local history)

- 4F: Group study rooms, individual study seats

- 3F: Social and natural sciences, Digital Zone, Digital Education Room

- 2F: Literature, humanities and arts

- 1F: Information desk, new arrivals, Large Print Corner, Cafe Chaekgalpi, Donation Desk

- B1: Mandeul Lab makerspace, Byeolbit Hall (180 seats)

- B2-B3: Car park

## Wi-Fi

The free wireless network is called HanbitLib_Free and needs no password. A session lasts 4 hours;
after that the login page appears again and a single tap reconnects you.

## Public computers

The Digital Zone has 40 PCs with office software and a shared printer. Each member may use them
for 2 hours per day; sign in at the seat kiosk with your library card. Visitors without a card can
ask the information desk for a one-day guest pass, which gives 1 hour of PC time and requires
photo ID.
""",
    """
# Fees and Prices (valid from 1 January 2025)

Borrowing, membership and most programmes are free of charge. The prices below cover printing,
copying and a few other services at the Main Library.

## Printing and copying (per page)

- A4 black and white: 100 won

- A4 colour: 400 won

- A3 black and white: 200 won

- A3 colour: 800 won

Double-sided pages are charged as two pages. Scanning to a USB stick or to e-mail is free.

## Items sold at the information desk

- Earphones: 1,000 won

- 16 GB USB stick: 6,000 won

- Bitnari tote bag: 4,500 won

- Bitnari keyring: 2,000 won

## Lockers and room hire

Coin lockers on the 1st floor take a 100 won coin, which is returned when you open the locker.
Lockers are for same-day use only; anything left overnight is removed by staff. Non-profit groups
may hire Byeolbit Hall for 60,000 won per 3 hours.

## How to pay

Self-service printers and copiers accept transit cards and credit or debit cards only. Cash is
accepted only at the information desk.
""",
    """
# Getting Here and Parking

Main Library, 88 Byeolbit-ro, Seowon-gu, Hanbit City

## Public transport

- Subway: Hanbit Line 1 to Byeolbit Station, exit 4, then about 6 minutes on foot.

- Bus: lines 27, 152 and 7-2 stop at the "Main Library" stop outside the east gate.

- Bicycle: 60 bicycle racks beside the plaza and a Hanbit Bike station with 12 docks.

## Main Library car park

The underground car park on levels B2 and B3 has 142 spaces and is open from 08:30 to 22:30.
Library members get the first hour free by scanning their card at the kiosk next to the lift;
after that, parking costs 600 won per 30 minutes. Non-members pay 600 won per 30 minutes from
arrival. The daily maximum is 10,000 won. Four electric-vehicle chargers are on B3; please move
your car as soon as charging is complete.

## Parking at the branches

- Haeoreum Branch: 18 spaces

- Gangbyeon Branch: 25 spaces

- Dalmaeul Branch: no car park; use the Wolpyeong public car park next door

- Saessak Children's Library: drop-off zone only
""",
]

DOCX_TEXT = """
# 한빛시립도서관 자원봉사 안내

한빛시립도서관은 시민 자원봉사자와 함께 운영됩니다. 책을 제자리에 꽂는 일부터 어린이 행사와
책 축제를 돕는 일까지, 봉사자 여러분의 손길이 도서관 곳곳에 닿아 있습니다. 2024년에는 모두
1,236명의 봉사자가 활동했습니다.

## 누가 참여할 수 있나요

만 14세 이상이면 누구나 참여할 수 있습니다. 청소년(만 14~19세)은 학업에 지장이 없도록 한 달에
최대 16시간까지 활동할 수 있으며, 성인은 활동 시간에 제한이 없습니다. 한 번 활동하는 시간은
2시간입니다.

## 활동 분야

- 서가 정리와 반납 도서 배가 (중앙도서관과 모든 분관)

- 새싹어린이도서관 행사 진행 보조

- 디지털 도우미: 스마트 실버 교실 수업 보조 (스마트 실버 교실 수료자 우선)

- 한빛 기억의 방 구술 기록 보조: 어르신 인터뷰 녹음과 기록 정리

- 한빛 책 축제 운영 도우미 (9월)

## 활동 시간

- 평일: 오후 4시 ~ 6시

- 토요일: 오전 10시 ~ 12시, 오후 2시 ~ 4시

일요일과 휴관일에는 봉사 활동을 하지 않습니다.

## 신청 방법과 사전 교육

'한빛 봉사나눔 포털'에 가입한 뒤 원하는 활동과 날짜를 골라 신청합니다. 처음 활동하기 전에는
1시간짜리 사전 교육을 반드시 들어야 합니다. 사전 교육은 매월 첫째 토요일 오전 10시에 중앙도서관
지하 1층 별빛홀에서 열립니다.

## 봉사 시간 인정과 혜택

- 활동을 마치면 봉사 시간이 포털에 자동으로 기록되며, 봉사 확인서를 직접 출력할 수 있습니다.

- 4회 활동할 때마다 1층 카페 '책갈피'의 음료 쿠폰을 1장씩 드립니다.

- 한 해 동안 60시간 이상 활동한 봉사자에게는 12월 송년 모임에서 '빛나리 봉사상'을 드립니다.

## 꼭 지켜 주세요

- 활동하는 동안에는 연두색 봉사 조끼를 입어 주세요.

- 활동하며 알게 된 이용자의 이름이나 대출 기록 같은 개인정보는 절대 밖으로 알리지 않습니다.

- 연락 없이 3회 불참하면 봉사 활동이 중단됩니다. 사정이 생기면 하루 전까지 포털에서 취소해
주세요.

## 자주 묻는 질문

학교에 낼 봉사 시간으로 인정되나요? 한빛 봉사나눔 포털에서 발급한 봉사 확인서는 학교와 기관에
제출하는 용도로 쓸 수 있습니다.

가족이 함께 참여할 수 있나요? 해마다 5월에는 초등학생 자녀와 보호자가 함께하는 '가족 봉사의 날'을
엽니다. 이날만큼은 만 14세 미만 어린이도 보호자와 함께라면 참여할 수 있습니다.
"""

# Legacy notices keep their hard-wrapped lines, as old notice boards did.
CP949_NOTICE = """\
[알림] 강변분관 리모델링 공사에 따른 임시 휴관 안내

안녕하십니까, 한빛시립도서관입니다.
2016년 개관 이후 많은 시민께서 아껴 주신 강변분관이 더 쾌적한
공간으로 거듭나기 위해 리모델링 공사를 진행합니다. 공사 기간에는
분관 운영을 잠시 멈추게 되어 이용자 여러분의 너그러운 양해를
부탁드립니다.

1. 휴관 기간
   - 2025년 3월 4일(화) ~ 2025년 9월 1일(월)
   - 재개관: 2025년 9월 2일(화) 오전 9시

2. 주요 공사 내용
   - 장애인과 어르신을 위한 엘리베이터 새로 설치
   - 한빛강이 내려다보이는 북카페 '리버페이지' 조성
   - 콘센트를 갖춘 노트북 열람석 24석 마련
   - 유아 자료실 확장 및 바닥 난방 설치
   - 총사업비: 18억 원 (시비와 국비)

3. 휴관 기간 중 대체 서비스
   - 강변동 행정복지센터 2층에서 '강변 임시 창구'를 운영합니다.
   - 운영 시간: 화요일~금요일 10:00~17:00 (주말과 공휴일 제외)
   - 이용할 수 있는 서비스: 예약 도서 수령, 자료 반납, 회원증 발급
   - 강변분관이 가진 자료 약 4만 2천 권은 공사 기간 동안 보존
     서고로 옮겨 두므로 대출할 수 없습니다. 다른 도서관의 자료를
     예약하시면 임시 창구에서 받으실 수 있습니다.

4. 대출 중인 자료
   - 강변분관에서 빌린 자료 가운데 반납 예정일이 3월 4일부터
     3월 17일 사이인 자료는 반납 예정일이 3월 18일로 자동
     연장됩니다.
   - 반납은 임시 창구, 다른 도서관, 무인 반납기 어디에서나
     하실 수 있습니다.

5. 재개관 기념 행사
   - 9월 6일(토) 오후 2시, 분관 앞 강변 산책길에서 시민 낭독회를
     엽니다. 새로 단장한 분관을 함께 둘러보는 안내 투어도 이어집니다.

6. 문의
   - 중앙도서관 안내데스크 또는 강변 임시 창구

공사 중에는 분관 주변 보행로 일부가 통제되오니 안전에 유의해
주시기 바랍니다. 더 좋은 모습으로 다시 찾아뵙겠습니다.

2025년 2월 14일
한빛시립도서관장
"""

EUCKR_NOTICE = """\
2025 독서동아리 지원 사업 참여 동아리 모집

한빛시립도서관은 책을 함께 읽고 이야기하는 시민 독서동아리를 응원합니다.
올해도 지역 독서동아리의 활동을 돕기 위해 지원 사업에 참여할 동아리를
모집합니다. 2024년에는 18개 동아리가 참여해 모두 212회의 모임을 열었습니다.

가. 신청 자격
  - 한빛시립도서관 회원증을 가진 회원 5명 이상으로 이루어진 동아리
  - 한 달에 1회 이상 정기적으로 모이는 동아리
  - 한 사람이 대표를 맡을 수 있는 동아리는 1개뿐입니다.

나. 선정 규모: 20개 동아리

다. 지원 내용
  - 도서 구입비: 동아리마다 한 해 30만 원
    (도서관이 책을 사서 동아리에 장기 대출하며, 활동이 끝나면 도서관이
    소장합니다.)
  - 모임 공간: 중앙도서관과 분관의 세미나실을 한 달에 2회 무료로 대관
  - 작가 초청 모임: 선정 동아리 가운데 5곳을 추첨해 작가와의 만남 1회 지원
  - 활동이 뛰어난 동아리 3곳은 12월 '독서동아리 한마당'에서 시상합니다.

라. 신청 기간: 2025년 2월 3일(월) ~ 2월 21일(금)

마. 신청 방법
  - 홈페이지에서 신청서를 내려받아 작성한 뒤 전자우편으로 제출하거나
    중앙도서관 1층 안내데스크에 직접 제출

바. 결과 발표: 2025년 3월 7일(금), 홈페이지 게시 및 대표자 개별 연락

사. 지켜야 할 사항
  - 모임을 할 때마다 활동 일지 작성 (앱 또는 종이 양식)
  - 결과 보고서 제출: 2025년 11월 14일(금)까지
  - 지원받은 도서는 활동이 끝난 뒤 도서관에 반납

선정된 동아리는 3월 15일(토) 오전 10시 중앙도서관 세미나실에서 열리는
오리엔테이션에 대표자를 포함해 1명 이상 참석해야 합니다.

처음 동아리를 만들어 보려는 분들을 위해 2월 8일(토) 오후 3시에
'독서동아리 시작하기' 설명회를 엽니다. 책 고르는 법과 모임을 오래
이어 가는 요령을 먼저 활동한 동아리 대표들이 직접 들려 드립니다.

문의: 중앙도서관 1층 안내데스크 독서문화 담당 사서
"""


def blocks(text: str) -> list[tuple[str, str]]:
    """Parse the mini markup into (kind, text) pairs; kind is 'title', 'heading', 'bullet' or 'para'."""
    out = []
    for raw in text.strip().split("\n\n"):
        line = " ".join(part.strip() for part in raw.strip().splitlines())
        for prefix, kind in (("# ", "title"), ("## ", "heading"), ("- ", "bullet")):
            if line.startswith(prefix):
                out.append((kind, line[len(prefix) :]))
                break
        else:
            out.append(("para", line))
    return out


def make_pdf(path: Path) -> None:
    from fpdf import FPDF
    from fpdf.enums import XPos, YPos

    pdf = FPDF(format="A4")
    pdf.set_creation_date(FIXED_DATE)
    pdf.set_title("Hanbit City Library - Main Library Visitor Guide 2025")
    pdf.set_author("Hanbit City Library")
    pdf.set_subject("Floor guide, Wi-Fi, fees and directions")
    pdf.set_creator("scripts/make_corpus_files.py")
    pdf.set_auto_page_break(auto=True, margin=18)
    pdf.set_margins(20, 20, 20)
    for number, page in enumerate(PDF_PAGES, 1):
        pdf.add_page()
        for kind, text in blocks(page):
            if kind == "title":
                pdf.set_font("Helvetica", "B", 17)
                pdf.multi_cell(0, 9, text, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
                pdf.ln(3)
            elif kind == "heading":
                pdf.ln(2)
                pdf.set_font("Helvetica", "B", 12.5)
                pdf.multi_cell(0, 7, text, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
            elif kind == "bullet":
                pdf.set_font("Helvetica", "", 11)
                pdf.set_x(pdf.l_margin + 4)
                pdf.multi_cell(0, 6, "- " + text, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
            else:
                pdf.set_font("Helvetica", "", 11)
                pdf.multi_cell(0, 6, text, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
                pdf.ln(2)
        if pdf.page != number:
            raise SystemExit(f"{path}: page {number} overflowed")
        pdf.set_auto_page_break(auto=False)
        pdf.set_y(-15)
        pdf.set_font("Helvetica", "I", 9)
        pdf.cell(0, 6, f"Visitor Guide 2025 - page {number} of {len(PDF_PAGES)}", align="C")
        pdf.set_auto_page_break(auto=True, margin=18)
    path.write_bytes(bytes(pdf.output()))


def _normalize_zip(data: bytes) -> bytes:
    """Rewrite a zip with fixed member timestamps so that repeated builds are byte-identical."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            fixed = zipfile.ZipInfo(info.filename, date_time=ZIP_DATE)
            fixed.compress_type = zipfile.ZIP_DEFLATED
            fixed.external_attr = 0o644 << 16
            dst.writestr(fixed, src.read(info.filename))
    return out.getvalue()


def make_docx(path: Path) -> None:
    import docx

    document = docx.Document()
    props = document.core_properties
    props.title = "한빛시립도서관 자원봉사 안내"
    props.author = "한빛시립도서관"
    props.last_modified_by = "한빛시립도서관"
    props.language = "ko-KR"
    props.created = FIXED_DATE.replace(tzinfo=None)
    props.modified = FIXED_DATE.replace(tzinfo=None)
    props.last_printed = FIXED_DATE.replace(tzinfo=None)
    props.revision = 1
    for kind, text in blocks(DOCX_TEXT):
        if kind == "title":
            document.add_heading(text, level=0)
        elif kind == "heading":
            document.add_heading(text, level=1)
        elif kind == "bullet":
            document.add_paragraph(text, style="List Bullet")
        else:
            document.add_paragraph(text)
    buffer = io.BytesIO()
    document.save(buffer)
    path.write_bytes(_normalize_zip(buffer.getvalue()))


def write_legacy(path: Path, text: str, encoding: str, newline: str) -> None:
    path.write_bytes(text.replace("\n", newline).encode(encoding))  # strict: fails on unmappable text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent.parent / "docs_corpus")
    out = parser.parse_args().out
    targets = {
        "en/visitor_guide_2025.pdf": make_pdf,
        "ko/volunteer_guide.docx": make_docx,
        "ko/legacy_notice_cp949.txt": lambda p: write_legacy(p, CP949_NOTICE, "cp949", "\r\n"),
        "ko/reading_club_euckr.txt": lambda p: write_legacy(p, EUCKR_NOTICE, "euc-kr", "\n"),
    }
    for rel, build in targets.items():
        path = out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        build(path)
        print(f"wrote {path} ({path.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
